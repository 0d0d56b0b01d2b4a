/* Times libinjection over the lines of a file, for scripts/detector-reference.sh: every line
 * (a JSON body's string value) checked once per pass, as a WAF checks each argument; prints the
 * median of 15 timed runs of 100 passes (after 3 untimed ones) in microseconds per pass.
 * Built against libinjection's own sources, which the script downloads (not vendored here).
 *
 *   libinjection_values FILE sqli|xss
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "libinjection.h"

#define RUNS 15
#define PASSES 100
#define MAX_LINES 100000

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[2], "sqli") != 0 && strcmp(argv[2], "xss") != 0)) {
        fprintf(stderr, "usage: %s FILE sqli|xss\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    static char buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    static const char *lines[MAX_LINES];
    static size_t lens[MAX_LINES];
    int k = 0;
    for (char *p = buf; p < buf + n && k < MAX_LINES;) {
        char *e = memchr(p, '\n', (size_t)(buf + n - p));
        if (!e) e = buf + n;
        if (e > p) {
            lines[k] = p;
            lens[k] = (size_t)(e - p);
            k++;
        }
        p = e + 1;
    }
    int sqli = strcmp(argv[2], "sqli") == 0;
    long flagged = 0;
    double runs[RUNS];
    for (int r = 0; r < RUNS + 3; r++) {
        double t = now_us();
        for (int pass = 0; pass < PASSES; pass++) {
            for (int i = 0; i < k; i++) {
                char fingerprint[8];
                flagged += sqli ? libinjection_sqli(lines[i], lens[i], fingerprint)
                                : libinjection_xss(lines[i], lens[i]);
            }
        }
        if (r >= 3) runs[r - 3] = (now_us() - t) / PASSES;
    }
    qsort(runs, RUNS, sizeof runs[0], by_value);
    printf("%d lines, %ld flagged per pass, %.1f us per pass\n", k,
           flagged / ((RUNS + 3) * PASSES), runs[RUNS / 2]);
    return 0;
}
