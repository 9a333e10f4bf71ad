// The README's first program: FedAvg over 100 non-IID clients on Fashion-MNIST.
#include <fedpp/fedpp.hpp>

#include <iostream>

int main() {
  auto fmnist = fedpp::load_fashion_mnist();  // clear error if the data set is not installed
  auto shards = fedpp::dirichlet_split(fmnist.train, /*clients=*/100, /*alpha=*/0.5, /*seed=*/1);
  fedpp::Mlp model({784, 200, 10});
  fedpp::Simulation sim(model, shards, fmnist.test, {.rounds = 20, .fraction = 0.1, .seed = 1});
  auto result = sim.run(fedpp::FedAvg{}, fedpp::LocalSgd({.lr = 0.05, .epochs = 5, .batch_size = 50}),
                        fedpp::ProgressPrinter{});
  std::cout << "final accuracy " << result.final_accuracy() << "\n";
}
