#include "engine/data/bpe_model.h"

#include <algorithm>
#include <queue>

#include "absl/strings/str_cat.h"
#include "engine/data/utf8.h"

namespace spillway {
namespace {

// A queued merge of the symbol at `pos` with the one after it.
struct Candidate {
  uint32_t rank;
  uint32_t pos;
  uint32_t id;
  // priority_queue pops the largest: make that the lowest rank, then the leftmost.
  bool operator<(const Candidate& other) const {
    if (rank != other.rank) return rank > other.rank;
    return pos > other.pos;
  }
};

struct Symbol {
  uint32_t id;
  int32_t prev;
  int32_t next;
  bool alive;
};

}  // namespace

absl::StatusOr<BpeModel> BpeModel::Create(
    std::vector<std::pair<std::string, uint32_t>> vocab,
    const std::vector<std::pair<std::string, std::string>>& merges, Options options) {
  BpeModel model;
  uint32_t limit = 0;
  for (const auto& [token, id] : vocab) limit = std::max(limit, id + 1);
  model.id_to_token_.resize(limit);
  model.has_id_.assign(limit, false);
  model.vocab_.reserve(vocab.size());
  for (auto& [token, id] : vocab) {
    if (model.has_id_[id]) {
      return absl::InvalidArgumentError(absl::StrCat("model.vocab: id ", id, " is given to both \"",
                                                     model.id_to_token_[id], "\" and \"", token,
                                                     "\""));
    }
    model.has_id_[id] = true;
    model.id_to_token_[id] = token;
    model.vocab_.emplace(std::move(token), id);
  }
  model.merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const std::string field = absl::StrCat("model.merges[", rank, "]");
    std::optional<uint32_t> a = model.TokenToId(left), b = model.TokenToId(right);
    std::optional<uint32_t> merged = model.TokenToId(absl::StrCat(left, right));
    for (const auto& [part, id] : {std::pair<std::string, std::optional<uint32_t>>{left, a},
                                   {right, b},
                                   {absl::StrCat(left, right), merged}}) {
      if (!id) {
        return absl::InvalidArgumentError(absl::StrCat(
            field, " (\"", left, "\", \"", right, "\"): \"", part, "\" is not in model.vocab"));
      }
    }
    // A repeated pair takes its last rank, as in HF.
    model.merges_.insert_or_assign(PairKey(*a, *b), Merge{static_cast<uint32_t>(rank), *merged});
  }
  if (options.unk_token) {
    model.unk_id_ = model.TokenToId(*options.unk_token);
    if (!model.unk_id_) {
      return absl::InvalidArgumentError(
          absl::StrCat("model.unk_token \"", *options.unk_token, "\" is not in model.vocab"));
    }
  }
  model.options_ = std::move(options);
  return model;
}

std::optional<uint32_t> BpeModel::TokenToId(absl::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::IdToToken(uint32_t id) const {
  if (id >= id_to_token_.size() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

void BpeModel::Encode(absl::string_view piece, std::vector<uint32_t>* ids) const {
  if (piece.empty()) return;
  if (options_.ignore_merges) {
    if (std::optional<uint32_t> id = TokenToId(piece)) {
      ids->push_back(*id);
      return;
    }
  }
  std::vector<Symbol> symbols;
  symbols.reserve(piece.size());
  auto add = [&](uint32_t id) {
    const int32_t index = static_cast<int32_t>(symbols.size());
    if (index > 0) symbols.back().next = index;
    symbols.push_back({id, index - 1, -1, true});
  };
  bool pending_unk = false;
  for (size_t i = 0; i < piece.size();) {
    const size_t len = utf8::CharLength(piece, i);
    std::optional<uint32_t> id = TokenToId(piece.substr(i, len));
    i += len;
    if (id) {
      if (pending_unk) add(*unk_id_);
      pending_unk = false;
      add(*id);
    } else if (unk_id_) {
      if (pending_unk && !options_.fuse_unk) add(*unk_id_);
      pending_unk = true;
    }
  }
  if (pending_unk) add(*unk_id_);

  auto find_merge = [&](int32_t left) -> const Merge* {
    const int32_t right = symbols[left].next;
    if (right < 0) return nullptr;
    auto it = merges_.find(PairKey(symbols[left].id, symbols[right].id));
    return it == merges_.end() ? nullptr : &it->second;
  };
  std::priority_queue<Candidate> queue;
  auto push = [&](int32_t left) {
    if (const Merge* m = find_merge(left)) {
      queue.push({m->rank, static_cast<uint32_t>(left), m->id});
    }
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) push(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive) continue;
    const Merge* m = find_merge(static_cast<int32_t>(top.pos));
    if (m == nullptr || m->id != top.id) continue;  // an outdated entry
    Symbol& right = symbols[left.next];
    right.alive = false;
    left.id = top.id;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = static_cast<int32_t>(top.pos);
    if (left.prev >= 0) push(left.prev);
    push(static_cast<int32_t>(top.pos));
  }
  for (const Symbol& s : symbols) {
    if (s.alive) ids->push_back(s.id);
  }
}

}  // namespace spillway
