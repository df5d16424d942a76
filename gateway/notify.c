/* systemd readiness and status notifications (see ficus/notify.h). */
#include <stdio.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>
#include "ficus/clock.h"
#include "ficus/notify.h"
#include "ficus/server.h"

void ficus_notify_ready(const ficus_server_t *s, const char *note)
{
    sd_notifyf(0, "READY=1\nSTATUS=generation %llu, %zu routes, %u workers%s%s", (unsigned long long)s->generation,
               s->running->num_routes, s->num_workers, note != NULL ? "; " : "", note != NULL ? note : "");
}

void ficus_notify_reloading(void)
{
    /* MONOTONIC_USEC: systemd 253+ matches it against the reload it started; older ones ignore it */
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)ficus_mono_us());
}

void ficus_notify_stopping(void)
{
    sd_notify(0, "STOPPING=1\nSTATUS=draining in-flight requests");
}

void ficus_notify_mainpid(void)
{
    sd_notifyf(0, "MAINPID=%d", (int)getpid());
}
