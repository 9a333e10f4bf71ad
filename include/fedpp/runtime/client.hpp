#pragma once
/// @file client.hpp
/// A federated client: trains locally from the global model and replies with its encoded update.

#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "fedpp/compressors/identity.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/optimizers/local_sgd.hpp"

namespace fedpp {

/// A client composed from a model, a local optimizer and a compressor.
/**
 * On each request it copies the global model, runs `Opt::train` on its shard, computes
 * delta = local - global and encodes it with `Comp`. Optimizer and compressor state are
 * created on the client's first participation and kept across rounds. Random draws come from
 * the streams (seed, round, client id, Purpose::shuffle / Purpose::compression). When the
 * compressor provides `encode(x, state, rng, ctx)` (CompressorWithContext) it is called with the
 * round's RoundContext, otherwise `encode(x, state, rng)`. An ExchangingLocalOptimizer (SCAFFOLD)
 * gets the request's RoundRequest::aux and its reply vector goes back dense in Reply::aux.
 * Checkpointing: the client has cereal `save`/`load` members (id, optimizer state, compressor
 * state; empty state structs are skipped), used through fedpp/serialization/checkpoint.hpp
 * (`save_state(client, os)` / `load_state(client, is)`); this header does not include cereal.
 * Model, data and policies are configuration, not part of a checkpoint.
 * @tparam M    a Model
 * @tparam Opt  a LocalOptimizer for M (default LocalSgd)
 * @tparam Comp a Compressor (default Identity)
 */
template <typename M, typename Opt = LocalSgd, typename Comp = Identity>
  requires Model<M> && LocalOptimizer<Opt, M> && Compressor<Comp, typename M::Scalar>
class Client {
 public:
  /// Scalar type of the model.
  using Scalar = typename M::Scalar;

  /// A client with id `id` that trains `model` on `data`.
  Client(ClientId id, M model, DatasetView<Scalar> data, Opt opt = Opt(), Comp comp = Comp())
      : id_(id), model_(std::move(model)), data_(std::move(data)), opt_(std::move(opt)), comp_(std::move(comp)) {
    if (data_.size() > 0 && data_.dim() != model_.input_dim())
      fail<DimensionError>("fedpp::Client", "data dimension must equal the model's input_dim " +
                                                std::to_string(model_.input_dim()), data_.dim());
  }

  /// Trains on the request's model and returns the encoded update (errors become status failed).
  Reply handle(const RoundRequest<Scalar>& req) {
    Reply reply;
    reply.client = id_;
    reply.round = req.round;
    reply.weight = static_cast<double>(data_.size());
    try {
      if (static_cast<Index>(req.model.size()) != model_.num_params())
        fail<DimensionError>("fedpp::Client::handle", "global model size must equal num_params " +
                                                          std::to_string(model_.num_params()), req.model.size());
      if (!opt_state_) opt_state_.emplace(opt_.make_state(model_));
      if (!comp_state_) comp_state_.emplace(comp_.template make_state<Scalar>(model_.num_params()));
      Vector<Scalar> local = as_map(req.model);
      const RoundContext ctx{req.round, req.seed, id_};
      Rng rng = make_rng(req.seed, req.round, id_, Purpose::shuffle);
      if constexpr (ExchangingLocalOptimizer<Opt, M>) {
        LocalExchange<Scalar> ex{req.aux, {}};
        reply.local = opt_.train(model_, local, data_, *opt_state_, ctx, rng, ex);
        if (ex.reply.size() > 0) {
          if (ex.reply.size() != model_.num_params())
            fail<DimensionError>("fedpp::Client::handle", "the optimizer's exchange reply must have num_params " +
                                                              std::to_string(model_.num_params()) + " entries",
                                 ex.reply.size());
          Identity::State none;
          Rng unused(0);
          reply.aux = Identity().encode(as_span(std::as_const(ex.reply)), none, unused);
        }
      } else {
        reply.local = opt_.train(model_, local, data_, *opt_state_, ctx, rng);
      }
      local -= as_map(req.model);  // delta = local - global
      Rng crng = make_rng(req.seed, req.round, id_, Purpose::compression);
      if constexpr (CompressorWithContext<Comp, Scalar>)
        reply.payload = comp_.encode(as_span(std::as_const(local)), *comp_state_, crng, ctx);
      else
        reply.payload = comp_.encode(as_span(std::as_const(local)), *comp_state_, crng);
    } catch (const std::exception& e) {
      reply.status = ReplyStatus::failed;
      reply.reason = FailureReason::client_error;
      reply.error = e.what();
      reply.payload = Payload();
      reply.aux = Payload();
    }
    return reply;
  }

  /// This client's id.
  [[nodiscard]] ClientId id() const noexcept { return id_; }
  /// This client's data.
  [[nodiscard]] const DatasetView<Scalar>& data() const noexcept { return data_; }
  /// Mutable data view (e.g. to install a label map for a data-level attack).
  [[nodiscard]] DatasetView<Scalar>& data() noexcept { return data_; }
  /// The model.
  [[nodiscard]] const M& model() const noexcept { return model_; }
  /// The local optimizer.
  [[nodiscard]] const Opt& optimizer() const noexcept { return opt_; }
  /// The compressor.
  [[nodiscard]] const Comp& compressor() const noexcept { return comp_; }
  /// Optimizer state (empty until the first participation).
  [[nodiscard]] const std::optional<local_state_t<Opt, M>>& optimizer_state() const noexcept { return opt_state_; }
  /// Compressor state (empty until the first participation).
  [[nodiscard]] const std::optional<compressor_state_t<Comp, Scalar>>& compressor_state() const noexcept {
    return comp_state_;
  }
  /// Mutable optimizer state (e.g. to restore it from a checkpoint).
  [[nodiscard]] std::optional<local_state_t<Opt, M>>& optimizer_state() noexcept { return opt_state_; }
  /// Mutable compressor state (e.g. to restore it from a checkpoint).
  [[nodiscard]] std::optional<compressor_state_t<Comp, Scalar>>& compressor_state() noexcept { return comp_state_; }

  /// cereal save: the id, then for each of optimizer and compressor state a presence flag and,
  /// unless the state type is empty, the state (its `serialize` member).
  template <class Archive>
  void save(Archive& ar) const {
    ar(id_);
    save_optional(ar, opt_state_);
    save_optional(ar, comp_state_);
  }

  /// cereal load: reverses save(); throws InvalidArgument when the checkpoint belongs to another
  /// client id (the client is left unchanged in that case).
  template <class Archive>
  void load(Archive& ar) {
    ClientId id = 0;
    ar(id);
    if (id != id_) fail("fedpp::Client::load", "checkpoint client id must be " + std::to_string(id_), id);
    std::optional<local_state_t<Opt, M>> opt_state;
    std::optional<compressor_state_t<Comp, Scalar>> comp_state;
    load_optional(ar, opt_state, [&] { return opt_.make_state(model_); });
    load_optional(ar, comp_state, [&] { return comp_.template make_state<Scalar>(model_.num_params()); });
    opt_state_ = std::move(opt_state);
    comp_state_ = std::move(comp_state);
  }

 private:
  ClientId id_;
  M model_;
  DatasetView<Scalar> data_;
  Opt opt_;
  Comp comp_;
  std::optional<local_state_t<Opt, M>> opt_state_;
  std::optional<compressor_state_t<Comp, Scalar>> comp_state_;

  template <class Archive, typename T>
  static void save_optional(Archive& ar, const std::optional<T>& st) {
    const bool has = st.has_value();
    ar(has);
    if constexpr (!std::is_empty_v<T>) {
      if (has) ar(*st);
    }
  }

  template <class Archive, typename T, typename Make>
  static void load_optional(Archive& ar, std::optional<T>& st, Make make) {
    bool has = false;
    ar(has);
    st.reset();
    if (!has) return;
    st.emplace(make());  // sized like a fresh state, then overwritten
    if constexpr (!std::is_empty_v<T>) ar(*st);
  }
};

}  // namespace fedpp
