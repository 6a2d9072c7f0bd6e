#include "engine/data/synthetic_language.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/rng.h"

namespace spillway {
namespace {

// Word probabilities within a state: p(rank k) proportional to 1 / (k + kZipfOffset)^kZipfExponent
// (Zipf-Mandelbrot), k = 0, 1, ...; the seed decides which word gets which rank.
constexpr double kZipfExponent = 1.0;
constexpr double kZipfOffset = 2.7;

enum StateId {
  kStart,             // sentence-initial determiner
  kSubjectPhrase,     // subject adjective or noun
  kSubjectNoun,       // subject noun after an adjective
  kVerb,              // transitive or intransitive verb
  kObjectDeterminer,  // determiner of an object or prepositional phrase
  kObjectPhrase,      // object adjective or noun
  kObjectNoun,        // object noun after an adjective
  kAfterPhrase,       // end of sentence, preposition, "and", or adverb
  kEnd,               // end of sentence after an adverb
  kNumStates,
};

struct Group {
  const char* words;  // space-separated
  StateId next;
};

struct StateSpec {
  const char* name;
  std::vector<Group> groups;
  // If > 0, the first word of the first group has this fixed probability (not Zipf-ranked, not
  // shuffled), and the other words share the rest. Keeps sentences short.
  double head_prob = 0;
};

// Disjoint word lists where the next state differs (subject vs object adjectives and nouns, and
// capitalised sentence-initial determiners), so the next state is a function of the word alone.
constexpr const char* kSubjectDeterminers =
    "The A My This One Every Some Our Her His That No Each Their Your";
constexpr const char* kSubjectAdjectives =
    "old young happy sad tired hungry clever quiet brave shy angry busy lazy kind proud wise "
    "silly calm curious lonely gentle noisy polite rich poor strong sleepy grumpy cheerful "
    "honest famous";
constexpr const char* kSubjectNouns =
    "cat dog man woman girl boy bird fox king queen child farmer teacher doctor baker sailor "
    "horse cow pig duck frog mouse rabbit wolf bear lion tiger owl crow goat sheep friend mother "
    "father sister brother uncle aunt baby student pilot driver singer painter poet judge nurse "
    "cook miner hunter monk knight wizard witch giant robot artist dancer clerk guard thief";
constexpr const char* kTransitiveVerbs =
    "saw found took made had wanted liked loved painted carried opened closed broke fixed bought "
    "sold ate cooked washed moved pushed pulled dropped kept lost hid read wrote drew held built "
    "cleaned chose needed watched kicked threw caught filled used shared stole hit touched "
    "visited";
constexpr const char* kIntransitiveVerbs =
    "slept ran walked sat smiled laughed waited cried danced sang jumped swam left stayed worked "
    "played rested fell shouted stood";
constexpr const char* kObjectDeterminers =
    "the a my his her our their this that every some one no each your";
constexpr const char* kObjectAdjectives =
    "red blue green yellow black white brown big small new long short heavy light warm cold wet "
    "dry soft hard round flat empty full clean dirty broken wooden shiny tiny huge bright dark "
    "sweet";
constexpr const char* kObjectNouns =
    "ball book box cup hat door window table chair bed house tree apple bread cake letter key "
    "map coin ring shoe bag lamp clock bottle basket boat car bike kite drum flower stone rock "
    "shell leaf stick rope pen paper picture song story gift toy bowl plate spoon knife fork egg "
    "cheese milk honey garden field river hill road bridge wall fence gate roof hole fire candle "
    "coat shirt";
constexpr const char* kPrepositions =
    "in on under near behind with by from for over into across beside inside and";
constexpr const char* kAdverbs = "today again slowly quickly later quietly together outside";

std::vector<StateSpec> Grammar() {
  std::vector<StateSpec> g(kNumStates);
  g[kStart] = {"sentence start", {{kSubjectDeterminers, kSubjectPhrase}}};
  g[kSubjectPhrase] = {"subject phrase",
                       {{kSubjectNouns, kVerb}, {kSubjectAdjectives, kSubjectNoun}}};
  g[kSubjectNoun] = {"subject noun", {{kSubjectNouns, kVerb}}};
  g[kVerb] = {"verb", {{kTransitiveVerbs, kObjectDeterminer}, {kIntransitiveVerbs, kAfterPhrase}}};
  g[kObjectDeterminer] = {"object determiner", {{kObjectDeterminers, kObjectPhrase}}};
  g[kObjectPhrase] = {"object phrase",
                      {{kObjectNouns, kAfterPhrase}, {kObjectAdjectives, kObjectNoun}}};
  g[kObjectNoun] = {"object noun", {{kObjectNouns, kAfterPhrase}}};
  g[kAfterPhrase] = {
      "after phrase",
      {{".", kStart}, {"!", kStart}, {kPrepositions, kObjectDeterminer}, {kAdverbs, kEnd}},
      0.4};
  g[kEnd] = {"sentence end", {{".", kStart}, {"!", kStart}}, 0.8};
  return g;
}

}  // namespace

absl::StatusOr<SyntheticLanguage> SyntheticLanguage::Create(uint64_t seed) {
  SyntheticLanguage lang;
  lang.seed_ = seed;
  const std::vector<StateSpec> grammar = Grammar();
  std::unordered_map<std::string, int> next_of_word;
  for (size_t s = 0; s < grammar.size(); ++s) {
    const StateSpec& spec = grammar[s];
    State state;
    state.name = spec.name;
    std::unordered_map<std::string, size_t> index;
    for (const Group& group : spec.groups) {
      for (absl::string_view text : absl::StrSplit(group.words, ' ', absl::SkipEmpty())) {
        std::string word(text);
        for (char c : word) {
          if (c <= ' ' || c > '~') {
            return absl::InternalError(
                absl::StrCat("synthetic grammar: bad character in '", word, "'"));
          }
        }
        if (!index.emplace(word, state.words.size()).second) {
          return absl::InternalError(
              absl::StrCat("synthetic grammar: '", word, "' repeats in state ", spec.name));
        }
        auto [it, inserted] = next_of_word.emplace(word, group.next);
        if (it->second != group.next) {
          return absl::InternalError(
              absl::StrCat("synthetic grammar: '", word, "' leads to two different states"));
        }
        state.words.push_back({std::move(word), 0.0, group.next});
      }
    }
    // Zipf ranks: the head word (if pinned) keeps its fixed probability; the seed shuffles the
    // ranks of the others.
    const size_t first = spec.head_prob > 0 ? 1 : 0;
    const size_t n = state.words.size() - first;
    std::vector<size_t> rank(n);
    std::iota(rank.begin(), rank.end(), size_t{0});
    Rng rng(seed, 1000 + s);
    for (size_t i = n; i > 1; --i) std::swap(rank[i - 1], rank[rng.Below(i)]);
    double total = 0;
    for (size_t i = 0; i < n; ++i) total += std::pow(rank[i] + kZipfOffset, -kZipfExponent);
    const double rest = first ? 1.0 - spec.head_prob : 1.0;
    if (first) state.words[0].prob = spec.head_prob;
    for (size_t i = 0; i < n; ++i) {
      state.words[first + i].prob = rest * std::pow(rank[i] + kZipfOffset, -kZipfExponent) / total;
    }
    std::vector<double> cumulative(state.words.size());
    double acc = 0;
    for (size_t i = 0; i < state.words.size(); ++i) cumulative[i] = acc += state.words[i].prob;
    cumulative.back() = 1.0;
    lang.states_.push_back(std::move(state));
    lang.cumulative_.push_back(std::move(cumulative));
    lang.word_index_.push_back(std::move(index));
  }

  // Stationary distribution by power iteration on the lazy chain (P + I) / 2, which has the
  // same stationary distribution and is aperiodic.
  const size_t num_states = lang.states_.size();
  std::vector<std::vector<double>> transition(num_states, std::vector<double>(num_states, 0.0));
  for (size_t s = 0; s < num_states; ++s) {
    for (const Word& w : lang.states_[s].words) transition[s][w.next] += w.prob;
  }
  std::vector<double> pi(num_states, 1.0 / num_states), next_pi(num_states);
  bool converged = false;
  for (int iter = 0; iter < 1000000 && !converged; ++iter) {
    for (size_t t = 0; t < num_states; ++t) next_pi[t] = 0.5 * pi[t];
    for (size_t s = 0; s < num_states; ++s) {
      for (size_t t = 0; t < num_states; ++t) next_pi[t] += 0.5 * pi[s] * transition[s][t];
    }
    double diff = 0;
    for (size_t t = 0; t < num_states; ++t) diff += std::abs(next_pi[t] - pi[t]);
    pi.swap(next_pi);
    converged = diff < 1e-12;
  }
  if (!converged) return absl::InternalError("synthetic grammar: state chain does not converge");
  for (size_t s = 0; s < num_states; ++s) {
    if (!(pi[s] > 0)) return absl::InternalError("synthetic grammar: unreachable state");
  }
  double entropy = 0, length = 0;
  for (size_t s = 0; s < num_states; ++s) {
    double h = 0, len = 0;
    for (const Word& w : lang.states_[s].words) {
      h -= w.prob * std::log(w.prob);
      len += w.prob * static_cast<double>(w.text.size() + 1);
    }
    entropy += pi[s] * h;
    length += pi[s] * len;
  }
  lang.stationary_ = std::move(pi);
  lang.entropy_nats_per_word_ = entropy;
  lang.tokens_per_word_ = length;
  lang.entropy_nats_per_token_ = entropy / length;
  return lang;
}

std::vector<uint32_t> SyntheticLanguage::Generate(size_t n_tokens, uint64_t seed,
                                                  uint64_t stream) const {
  Rng rng(seed, stream);
  std::vector<uint32_t> tokens;
  tokens.reserve(n_tokens + 32);
  int state = kStart;
  while (tokens.size() < n_tokens) {
    const std::vector<double>& cumulative = cumulative_[state];
    const double u = rng.Uniform();
    const size_t k = std::upper_bound(cumulative.begin(), cumulative.end(), u) - cumulative.begin();
    const Word& word = states_[state].words[std::min(k, cumulative.size() - 1)];
    for (char c : word.text) tokens.push_back(static_cast<unsigned char>(c));
    tokens.push_back(' ');
    state = word.next;
  }
  tokens.resize(n_tokens);
  return tokens;
}

absl::StatusOr<double> SyntheticLanguage::LogProb(std::span<const uint32_t> tokens) const {
  double log_prob = 0;
  int state = kStart;
  std::string word;
  size_t word_start = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] >= kSyntheticVocabSize) {
      return absl::InvalidArgumentError(
          absl::StrCat("token ", tokens[i], " at position ", i, " is not a byte"));
    }
    if (tokens[i] != ' ') {
      if (word.empty()) word_start = i;
      word.push_back(static_cast<char>(tokens[i]));
      continue;
    }
    auto it = word_index_[state].find(word);
    if (it == word_index_[state].end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", word, "' at position ", word.empty() ? i : word_start,
                       " is not a word of state ", states_[state].name));
    }
    const Word& w = states_[state].words[it->second];
    log_prob += std::log(w.prob);
    state = w.next;
    word.clear();
  }
  if (!word.empty()) {
    // A cut-off word: the total probability of the words it begins.
    double p = 0;
    for (const Word& w : states_[state].words) {
      if (w.text.compare(0, word.size(), word) == 0) p += w.prob;
    }
    if (p == 0) {
      return absl::InvalidArgumentError(absl::StrCat("'", word, "' at position ", word_start,
                                                     " begins no word of state ",
                                                     states_[state].name));
    }
    log_prob += std::log(p);
  }
  return log_prob;
}

std::string SyntheticLanguage::Describe() const {
  size_t words = 0;
  for (const State& s : states_) words += s.words.size();
  char numbers[160];
  std::snprintf(numbers, sizeof(numbers), "%.4f nats/token (%.3f nats/word over %.3f tokens/word)",
                entropy_nats_per_token_, entropy_nats_per_word_, tokens_per_word_);
  return absl::StrCat("synthetic English-like language (grammar variant ", seed_,
                      "): ", states_.size(), " states, ", words,
                      " state-words, byte tokens (vocab 256), entropy floor ", numbers);
}

}  // namespace spillway
