/* Helpers shared by the C and C++ benchmarks: clocks, medians, quick mode, and the RESULT line
 * that benches/run.py collects (the convention is in benches/README.md).
 *
 * Header-only (static inline, so unused helpers cost nothing and raise no warning under
 * -Wall -Wextra -Werror); valid C11 and C++17. */
#ifndef MPX_BENCH_COMMON_H
#define MPX_BENCH_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Monotonic time in nanoseconds. */
static inline uint64_t bench_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Monotonic time in seconds. */
static inline double bench_now(void) {
    return (double)bench_now_ns() * 1e-9;
}

/* True when BENCH_QUICK is set to anything but "" or "0": smaller sizes, fewer repetitions
 * (a smoke run that checks the benchmark works, not a measurement). */
static inline int bench_quick(void) {
    const char *q = getenv("BENCH_QUICK");
    return q != NULL && q[0] != '\0' && strcmp(q, "0") != 0;
}

/* Picks the full or the quick value of a parameter. */
static inline long bench_pick(long full, long quick) {
    return bench_quick() ? quick : full;
}

/* Keeps the compiler from dropping stores into memory nothing reads afterwards
 * (a memcpy into a buffer that is then freed may otherwise vanish). */
static inline void bench_clobber(void *p) {
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

static inline int bench_cmp_double_(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The p-quantile (0..1, nearest rank) of n samples; sorts v in place. NAN if n == 0. */
static inline double bench_quantile(double *v, size_t n, double p) {
    if (n == 0) return NAN;
    qsort(v, n, sizeof *v, bench_cmp_double_);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* The median of n samples (upper median for even n); sorts v in place. */
static inline double bench_median(double *v, size_t n) {
    if (n == 0) return NAN;
    qsort(v, n, sizeof *v, bench_cmp_double_);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Writes s as a JSON string literal (or null). */
static inline void bench_json_str_(FILE *f, const char *s) {
    if (s == NULL) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(f, "\\%c", *c);
        else if (*c < 0x20)
            fprintf(f, "\\u%04x", *c);
        else
            fputc(*c, f);
    }
    fputc('"', f);
}

/* Writes a finite number (or null: JSON has no NaN). */
static inline void bench_json_num_(FILE *f, double x) {
    if (isfinite(x))
        fprintf(f, "%.6g", x);
    else
        fputs("null", f);
}

/* ratio > 1 always means mpx is better: value/anchor when higher is better, anchor/value when
 * lower is better. NAN when either is missing or not positive. */
static inline double bench_ratio(double value, double anchor_value, int higher_is_better) {
    if (!(value > 0) || !(anchor_value > 0) || !isfinite(value) || !isfinite(anchor_value)) return NAN;
    return higher_is_better ? value / anchor_value : anchor_value / value;
}

/* Reports one figure: a human-readable line, then the machine-readable line
 *   RESULT {"bench":...,"figure":...,"value":...,"unit":...,"anchor":...,"anchor_value":...,
 *           "ratio":...,"higher_is_better":...,"goal":...,"goal_ratio":...}
 * anchor: what the figure is compared with, measured in the same run (NULL: no anchor, and
 * anchor_value is ignored). goal: the goal in words (NULL: none); goal_ratio: the ratio that
 * meets it (ratio >= goal_ratio), or 0 when the goal is not a ratio. */
static inline void bench_result(const char *bench, const char *figure, double value, const char *unit,
                                const char *anchor, double anchor_value, int higher_is_better,
                                const char *goal, double goal_ratio) {
    double ratio = anchor ? bench_ratio(value, anchor_value, higher_is_better) : NAN;
    if (anchor == NULL) anchor_value = NAN;
    printf("  %-46s %10.4g %-8s", figure, value, unit);
    if (anchor) printf("  | %s %.4g, ratio %.3f", anchor, anchor_value, ratio);
    if (goal) printf("  (goal %s)", goal);
    printf("\n");

    printf("RESULT {\"bench\":");
    bench_json_str_(stdout, bench);
    printf(",\"figure\":");
    bench_json_str_(stdout, figure);
    printf(",\"value\":");
    bench_json_num_(stdout, value);
    printf(",\"unit\":");
    bench_json_str_(stdout, unit);
    printf(",\"anchor\":");
    bench_json_str_(stdout, anchor);
    printf(",\"anchor_value\":");
    bench_json_num_(stdout, anchor_value);
    printf(",\"ratio\":");
    bench_json_num_(stdout, ratio);
    printf(",\"higher_is_better\":%s,\"goal\":", higher_is_better ? "true" : "false");
    bench_json_str_(stdout, goal);
    printf(",\"goal_ratio\":");
    bench_json_num_(stdout, goal_ratio > 0 ? goal_ratio : NAN);
    printf("}\n");
    /* Results reach run.py even if the program crashes later. */
    fflush(stdout);
}

/* A figure without an anchor (an informational figure: shown, never judged). */
static inline void bench_info(const char *bench, const char *figure, double value, const char *unit,
                              int higher_is_better) {
    bench_result(bench, figure, value, unit, NULL, NAN, higher_is_better, NULL, 0);
}

/* Bytes per second to GB/s (10^9, as memcpy figures are usually quoted). */
static inline double bench_gbps(double bytes, double seconds) {
    return bytes / seconds / 1e9;
}

#endif /* MPX_BENCH_COMMON_H */
