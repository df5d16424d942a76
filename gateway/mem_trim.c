/* Giving freed memory back to the system.
 *
 * glibc keeps what the workers free in their arenas for reuse and returns it to the kernel only from the top of the
 * heap: after 3,000 idle TLS connections closed, ficus's RSS stayed at 10x its baseline (9 MB → 120 MB) and grew
 * across rounds, though the memory was free (malloc_trim brought it back to 11 MB). So the control thread looks at
 * the arenas' free bytes (mallinfo2) once a second and trims when they pass a threshold, at most every few seconds:
 * a steady load, whose free memory stays small and is reused at once, never pays for it; the first quiet seconds
 * after a burst give the memory back. malloc_trim walks and locks each arena briefly (milliseconds after a burst,
 * never on a worker's loop). Under ASan, mallinfo2 reports nothing and nothing is trimmed. */
#include <malloc.h>
#include <time.h>
#include "ficus/clock.h"
#include "ficus/log.h"
#include "ficus/mem_trim.h"

void ficus_mem_trim_tick(void)
{
    static uint64_t last_us;
    uint64_t now = ficus_mono_us();
    if (last_us != 0 && now - last_us < (uint64_t)FICUS_MEM_TRIM_INTERVAL_S * 1000000)
        return;
    struct mallinfo2 mi = mallinfo2();
    if (mi.fordblks < FICUS_MEM_TRIM_MIN_FREE)
        return;
    last_us = now;
    malloc_trim(0);
    ficus_debug("memory: %zu MB free in the allocator (%zu MB in use): trimmed", mi.fordblks >> 20, mi.uordblks >> 20);
}
