// The progress line's rate and time left (src/cli/progress.h), against hand arithmetic.
#include <gtest/gtest.h>

#include "cli/progress.h"

using sdgen::cli::rate_and_eta;

TEST(Progress, RateAndTimeLeft) {
  EXPECT_EQ(rate_and_eta(0, 25, 0.0), "0.00 it/s, ETA --");     // no step finished yet
  EXPECT_EQ(rate_and_eta(5, 25, 2.0), "2.50 it/s, ETA 0:08");   // 20 steps left at 2.5 per second
  EXPECT_EQ(rate_and_eta(1, 4, 30.0), "0.03 it/s, ETA 1:30");   // 3 steps of 30 s
  EXPECT_EQ(rate_and_eta(1, 1001, 3.6), "0.28 it/s, ETA 1:00:00");  // 1000 steps of 3.6 s
  EXPECT_EQ(rate_and_eta(25, 25, 10.0), "2.50 it/s, done in 0:10");
  EXPECT_EQ(rate_and_eta(2, 3, 119.6), "0.02 it/s, ETA 1:00");  // 59.8 s rounds to a whole minute
}
