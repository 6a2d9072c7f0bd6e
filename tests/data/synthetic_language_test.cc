#include "engine/data/synthetic_language.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace spillway {
namespace {

SyntheticLanguage MakeLanguage(uint64_t seed) {
  absl::StatusOr<SyntheticLanguage> lang = SyntheticLanguage::Create(seed);
  EXPECT_TRUE(lang.ok()) << lang.status();
  return std::move(lang).value();
}

TEST(SyntheticLanguageTest, GenerateIsDeterministicAndAscii) {
  const SyntheticLanguage lang = MakeLanguage(1);
  const std::vector<uint32_t> a = lang.Generate(5000, 7, 0);
  EXPECT_EQ(a, lang.Generate(5000, 7, 0));
  EXPECT_EQ(a, MakeLanguage(1).Generate(5000, 7, 0));
  EXPECT_NE(a, lang.Generate(5000, 7, 1));             // another stream
  EXPECT_NE(a, lang.Generate(5000, 8, 0));             // another seed
  EXPECT_NE(a, MakeLanguage(2).Generate(5000, 7, 0));  // another grammar variant
  ASSERT_EQ(a.size(), 5000u);
  // A prefix of a longer generation.
  const std::vector<uint32_t> longer = lang.Generate(6000, 7, 0);
  EXPECT_TRUE(std::equal(a.begin(), a.end(), longer.begin()));
  for (uint32_t t : a) {
    EXPECT_LT(t, kSyntheticVocabSize);
    EXPECT_TRUE(t == ' ' || (t > ' ' && t <= '~')) << t;
  }
  EXPECT_TRUE(lang.Generate(0, 1, 0).empty());
}

TEST(SyntheticLanguageTest, GrammarIsUnifilarAndWordDetermined) {
  const SyntheticLanguage lang = MakeLanguage(3);
  std::map<std::string, int> next_of;
  for (const SyntheticLanguage::State& state : lang.states()) {
    std::set<std::string> seen;
    double total = 0;
    for (const SyntheticLanguage::Word& word : state.words) {
      EXPECT_TRUE(seen.insert(word.text).second) << word.text;
      EXPECT_EQ(word.text.find(' '), std::string::npos);
      auto [it, inserted] = next_of.emplace(word.text, word.next);
      EXPECT_EQ(it->second, word.next) << word.text;
      EXPECT_GT(word.prob, 0);
      total += word.prob;
    }
    EXPECT_NEAR(total, 1.0, 1e-12) << state.name;
  }
  // The stationary distribution is a fixed point of the state chain.
  const size_t n = lang.states().size();
  std::vector<double> moved(n, 0.0);
  for (size_t s = 0; s < n; ++s) {
    for (const SyntheticLanguage::Word& w : lang.states()[s].words) {
      moved[w.next] += lang.stationary()[s] * w.prob;
    }
  }
  for (size_t s = 0; s < n; ++s) EXPECT_NEAR(moved[s], lang.stationary()[s], 1e-10);
}

TEST(SyntheticLanguageTest, ExactEntropyMatchesMonteCarlo) {
  for (uint64_t variant : {1, 2}) {
    const SyntheticLanguage lang = MakeLanguage(variant);
    const double exact = lang.EntropyNatsPerToken();
    EXPECT_GT(exact, 0.5);
    EXPECT_LT(exact, 1.0);
    const std::vector<uint32_t> sample = lang.Generate(200000, 2024, 0);
    absl::StatusOr<double> log_prob = lang.LogProb(sample);
    ASSERT_TRUE(log_prob.ok()) << log_prob.status();
    const double estimate = -*log_prob / static_cast<double>(sample.size());
    EXPECT_NEAR(estimate, exact, 0.01 * exact) << lang.Describe();
  }
}

TEST(SyntheticLanguageTest, LogProbScoresWordsExactly) {
  const SyntheticLanguage lang = MakeLanguage(1);
  // Score a one-sentence text by hand from the word table.
  auto prob = [&](int state, const std::string& text) {
    for (const SyntheticLanguage::Word& w : lang.states()[state].words) {
      if (w.text == text) return w.prob;
    }
    ADD_FAILURE() << text;
    return 0.0;
  };
  const std::string text = "The old cat saw a red ball . ";
  std::vector<uint32_t> tokens(text.begin(), text.end());
  const double expected = std::log(prob(0, "The")) + std::log(prob(1, "old")) +
                          std::log(prob(2, "cat")) + std::log(prob(3, "saw")) +
                          std::log(prob(4, "a")) + std::log(prob(5, "red")) +
                          std::log(prob(6, "ball")) + std::log(prob(7, "."));
  absl::StatusOr<double> got = lang.LogProb(tokens);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_NEAR(*got, expected, 1e-9);

  // A cut-off word counts with the total probability of the words it begins ("b": "bread"...).
  const std::string cut = "The old cat saw a b";
  double begins_with_b = 0;
  for (const SyntheticLanguage::Word& w : lang.states()[5].words) {
    if (w.text[0] == 'b') begins_with_b += w.prob;
  }
  got = lang.LogProb(std::vector<uint32_t>(cut.begin(), cut.end()));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_NEAR(*got,
              expected - std::log(prob(5, "red")) - std::log(prob(6, "ball")) -
                  std::log(prob(7, ".")) + std::log(begins_with_b),
              1e-9);

  // Impossible texts are refused, naming the position.
  const std::string bad = "The cat ate zebra ";
  got = lang.LogProb(std::vector<uint32_t>(bad.begin(), bad.end()));
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("position 12"), absl::string_view::npos) << got.status();
  EXPECT_FALSE(lang.LogProb(std::vector<uint32_t>{'T', 'h', 'e', ' ', ' '}).ok());
}

TEST(SyntheticLanguageTest, DescribeMentionsTheEntropy) {
  const SyntheticLanguage lang = MakeLanguage(1);
  const std::string description = lang.Describe();
  char value[32];
  std::snprintf(value, sizeof(value), "%.4f", lang.EntropyNatsPerToken());
  EXPECT_NE(description.find(value), std::string::npos) << description;
  EXPECT_EQ(description.find('\n'), std::string::npos);
}

}  // namespace
}  // namespace spillway
