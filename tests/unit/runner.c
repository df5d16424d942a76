/* The unit-test runner declared in runner.h: registration list, check reporting and main().
 *
 * OWNS: main() of every unit-test executable. Prints a TAP-like "1..N" plan then "ok N - name" / "not ok N - name"
 * per test, and exits non-zero if any test failed. Each test runs in a forked child (30s alarm), so a crash, hang
 * or sanitizer report fails that test only. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runner.h"

#define TEST_TIMEOUT_SECONDS 30

typedef struct st_test_t {
    const char *name;
    ficus_test_fn_t fn;
    struct st_test_t *next;
} test_t;

static test_t *tests_head, **tests_tail = &tests_head;
static int current_failed; /* in the child: a check of the running test failed */

void ficus_test_register(const char *name, ficus_test_fn_t fn)
{
    test_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        abort();
    t->name = name;
    t->fn = fn;
    *tests_tail = t;
    tests_tail = &t->next;
}

int ficus_test_check(int pass, const char *file, int line, const char *expr)
{
    if (!pass) {
        printf("#   %s:%d: check failed: %s\n", file, line, expr);
        current_failed = 1;
    }
    return pass;
}

int ficus_test_check_str(const char *a, const char *b, const char *expr_a, const char *expr_b, const char *file, int line)
{
    int pass = (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
    if (!pass) {
        printf("#   %s:%d: %s == %s failed\n#     got:      %s%s%s\n#     expected: %s%s%s\n", file, line, expr_a, expr_b,
               a ? "\"" : "", a ? a : "NULL", a ? "\"" : "", b ? "\"" : "", b ? b : "NULL", b ? "\"" : "");
        current_failed = 1;
    }
    return pass;
}

int ficus_test_check_int(long long a, long long b, const char *expr_a, const char *expr_b, const char *file, int line)
{
    if (a != b) {
        printf("#   %s:%d: %s == %s failed\n#     got:      %lld\n#     expected: %lld\n", file, line, expr_a, expr_b, a, b);
        current_failed = 1;
    }
    return a == b;
}

/* Runs one test in a child; returns 1 when it passed, describing any abnormal end in `why`. */
static int run_one(const test_t *t, char *why, size_t whylen)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, whylen, "fork failed");
        return 0;
    }
    if (pid == 0) {
        alarm(TEST_TIMEOUT_SECONDS);
        t->fn();
        fflush(NULL);
        exit(current_failed ? 1 : 0); /* exit(), not _exit(): LeakSanitizer runs at exit */
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            snprintf(why, whylen, " # waitpid failed: %s", strerror(errno));
            return 0;
        }
    }
    if (WIFSIGNALED(status)) {
        if (WTERMSIG(status) == SIGALRM)
            snprintf(why, whylen, " # timed out after %ds", TEST_TIMEOUT_SECONDS);
        else
            snprintf(why, whylen, " # killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
        return 0;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) > 1)
        snprintf(why, whylen, " # exited with status %d", WEXITSTATUS(status));
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static int selected(const test_t *t, int argc, char **argv)
{
    for (int i = 1; i < argc; ++i)
        if (strcmp(argv[i], t->name) == 0)
            return 1;
    return argc <= 1;
}

int main(int argc, char **argv)
{
    int planned = 0, n = 0, failed = 0;
    const test_t *t;
    for (int i = 1; i < argc; ++i) {
        for (t = tests_head; t != NULL && strcmp(t->name, argv[i]) != 0; t = t->next) {
        }
        if (t == NULL) {
            fprintf(stderr, "no test named '%s'\n", argv[i]);
            return 2;
        }
    }
    for (t = tests_head; t != NULL; t = t->next)
        planned += selected(t, argc, argv);
    printf("1..%d\n", planned);
    for (t = tests_head; t != NULL; t = t->next) {
        if (!selected(t, argc, argv))
            continue;
        char why[128] = "";
        int pass = run_one(t, why, sizeof(why));
        printf("%s %d - %s%s\n", pass ? "ok" : "not ok", ++n, t->name, why);
        failed += !pass;
    }
    if (failed != 0)
        printf("# %d of %d tests failed\n", failed, n);
    return failed != 0;
}
