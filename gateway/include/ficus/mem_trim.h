/* Giving memory that bursts of connections freed back to the system (gateway/mem_trim.c). */
#ifndef ficus__mem_trim_h
#define ficus__mem_trim_h

/** Control thread, once a second: when glibc's arenas hold more than FICUS_MEM_TRIM_MIN_FREE bytes of free memory,
 * hand it back (malloc_trim), at most every FICUS_MEM_TRIM_INTERVAL_S seconds. */
void ficus_mem_trim_tick(void);

#define FICUS_MEM_TRIM_MIN_FREE (16 * 1024 * 1024)
#define FICUS_MEM_TRIM_INTERVAL_S 5

#endif
