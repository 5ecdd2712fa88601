/* Scores one NAS-Bench-201 cell on the CPU, then shows the error path.
 * Build: cc examples/03_score_from_c.c -I include -L target/release -ldasnas_c -Wl,-rpath,target/release */
#include <stdio.h>
#include "dasnas.h"

int main(void) {
    DasnasOptions opts = dasnas_options_default();
    opts.device = "cpu";
    opts.batch = 16;
    DasnasScorer *scorer = dasnas_scorer_open(&opts);
    if (!scorer) {
        fprintf(stderr, "open: %s\n", dasnas_last_error());
        return 1;
    }

    const char *cell = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
                       "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|";
    DasnasScores s;
    if (dasnas_score(scorer, cell, &s) != 0) {
        fprintf(stderr, "score: %s\n", dasnas_last_error());
        dasnas_scorer_free(scorer);
        return 1;
    }
    printf("wot=%.6f d=%.6f n_units=%llu das=%.6f singular=%d\n",
           s.wot, s.d, (unsigned long long)s.n_units, s.das, (int)s.singular);

    /* A bad cell: -1, and the last error says what is wrong and where. */
    if (dasnas_score(scorer, "|bogus~0|", &s) == -1)
        printf("error: %s\n", dasnas_last_error());

    dasnas_scorer_free(scorer);
    return 0;
}
