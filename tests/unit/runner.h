/* A tiny unit-test framework shared by all unit tests (tests/unit/test_*.c, each linked with runner.c).
 *
 * OWNS: test registration (FICUS_TEST), the check macros and the TAP-like runner in runner.c.
 * USAGE:
 *   FICUS_TEST(parses_ports) { ok(x == 1); ok_int(port, 8080); ok_str(name, "api"); }
 * Checks never abort: a failed check prints file:line and the values, marks the current test failed, and evaluates
 * to 0 (so `if (!ok(p != NULL)) return;` guards what follows). Each test runs in its own forked child with a 30s
 * alarm, so a crash or hang is reported as that test's failure. `./test_x name...` runs only the named tests. */
#ifndef ficus__test_runner_h
#define ficus__test_runner_h

typedef void (*ficus_test_fn_t)(void);

void ficus_test_register(const char *name, ficus_test_fn_t fn);
int ficus_test_check(int pass, const char *file, int line, const char *expr);
int ficus_test_check_str(const char *a, const char *b, const char *expr_a, const char *expr_b, const char *file, int line);
int ficus_test_check_int(long long a, long long b, const char *expr_a, const char *expr_b, const char *file, int line);

#define FICUS_TEST(name)                                                                                                           \
    static void ficus_test_##name(void);                                                                                           \
    __attribute__((constructor)) static void ficus_test_register_##name(void)                                                      \
    {                                                                                                                              \
        ficus_test_register(#name, ficus_test_##name);                                                                             \
    }                                                                                                                              \
    static void ficus_test_##name(void)

#define ok(cond) ficus_test_check(!!(cond), __FILE__, __LINE__, #cond)
#define ok_str(a, b) ficus_test_check_str((a), (b), #a, #b, __FILE__, __LINE__)
#define ok_int(a, b) ficus_test_check_int((long long)(a), (long long)(b), #a, #b, __FILE__, __LINE__)

#endif
