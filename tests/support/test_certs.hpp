#pragma once
// Test certificates made at test time with OpenSSL (no private key is committed): a federation CA,
// a server certificate for 127.0.0.1 and localhost, client certificates with CN "client-<i>", and a
// second, unrelated CA with its own client and server certificates (for the "not from our CA" cases).
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

namespace fedpp_test {

namespace certs_detail {

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertFree {
  void operator()(X509* c) const { X509_free(c); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;

inline void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test certificates: ") + what + " failed");
}

inline Key make_key() {
  Key k(EVP_EC_gen("P-256"));
  check(k != nullptr, "EVP_EC_gen");
  return k;
}

inline void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  check(ext != nullptr, "X509V3_EXT_conf_nid");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A certificate for `key` with common name `cn`, signed by (issuer, issuer_key), or self-signed when issuer is null.
inline Cert make_cert(EVP_PKEY* key, const std::string& cn, X509* issuer, EVP_PKEY* issuer_key, bool ca,
                      const char* san, long serial) {
  Cert c(X509_new());
  check(c != nullptr, "X509_new");
  X509_set_version(c.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(c.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(c.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(c.get()), 7L * 24 * 3600);
  X509_set_pubkey(c.get(), key);
  X509_NAME* name = X509_get_subject_name(c.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(c.get(), issuer ? X509_get_subject_name(issuer) : name);
  X509* iss = issuer ? issuer : c.get();
  add_ext(c.get(), iss, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add_ext(c.get(), iss, NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,keyEncipherment");
  if (san) add_ext(c.get(), iss, NID_subject_alt_name, san);
  check(X509_sign(c.get(), issuer_key ? issuer_key : key, EVP_sha256()) > 0, "X509_sign");
  return c;
}

inline void write_pem(const std::filesystem::path& p, X509* cert) {
  FILE* f = std::fopen(p.c_str(), "wb");
  check(f != nullptr, "fopen");
  const int ok = PEM_write_X509(f, cert);
  std::fclose(f);
  check(ok == 1, "PEM_write_X509");
}

inline void write_pem(const std::filesystem::path& p, EVP_PKEY* key) {
  FILE* f = std::fopen(p.c_str(), "wb");
  check(f != nullptr, "fopen");
  const int ok = PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  check(ok == 1, "PEM_write_PrivateKey");
}

}  // namespace certs_detail

/// Paths of a generated test PKI in `dir`.
struct TestPki {
  std::filesystem::path dir;
  [[nodiscard]] std::string ca() const { return (dir / "ca.pem").string(); }
  [[nodiscard]] std::string server_cert() const { return (dir / "server.pem").string(); }
  [[nodiscard]] std::string server_key() const { return (dir / "server.key").string(); }
  [[nodiscard]] std::string client_cert(int i) const { return (dir / ("client-" + std::to_string(i) + ".pem")).string(); }
  [[nodiscard]] std::string client_key(int i) const { return (dir / ("client-" + std::to_string(i) + ".key")).string(); }
  /// A CA unrelated to the federation, and a client-0 certificate and a server certificate it signed.
  [[nodiscard]] std::string other_ca() const { return (dir / "other-ca.pem").string(); }
  [[nodiscard]] std::string other_client_cert() const { return (dir / "other-client-0.pem").string(); }
  [[nodiscard]] std::string other_client_key() const { return (dir / "other-client-0.key").string(); }
  [[nodiscard]] std::string other_server_cert() const { return (dir / "other-server.pem").string(); }
  [[nodiscard]] std::string other_server_key() const { return (dir / "other-server.key").string(); }
};

/// Generates the PKI for `clients` clients into `dir` (created if needed).
inline TestPki make_test_pki(const std::filesystem::path& dir, int clients) {
  using namespace certs_detail;
  std::filesystem::create_directories(dir);
  TestPki pki{dir};
  long serial = 1;
  const auto ca_key = make_key();
  const auto ca = make_cert(ca_key.get(), "fedpp test CA", nullptr, nullptr, true, nullptr, serial++);
  write_pem(pki.ca(), ca.get());
  const auto server_key = make_key();
  const auto server = make_cert(server_key.get(), "fedpp test server", ca.get(), ca_key.get(), false,
                                "IP:127.0.0.1,DNS:localhost", serial++);
  write_pem(pki.server_cert(), server.get());
  write_pem(pki.server_key(), server_key.get());
  for (int i = 0; i < clients; ++i) {
    const auto key = make_key();
    const auto cert = make_cert(key.get(), "client-" + std::to_string(i), ca.get(), ca_key.get(), false, nullptr, serial++);
    write_pem(pki.client_cert(i), cert.get());
    write_pem(pki.client_key(i), key.get());
  }
  const auto other_key = make_key();
  const auto other = make_cert(other_key.get(), "unrelated CA", nullptr, nullptr, true, nullptr, serial++);
  write_pem(pki.other_ca(), other.get());
  const auto oc_key = make_key();
  const auto oc = make_cert(oc_key.get(), "client-0", other.get(), other_key.get(), false, nullptr, serial++);
  write_pem(pki.other_client_cert(), oc.get());
  write_pem(pki.other_client_key(), oc_key.get());
  const auto os_key = make_key();
  const auto os = make_cert(os_key.get(), "impostor server", other.get(), other_key.get(), false,
                            "IP:127.0.0.1,DNS:localhost", serial++);
  write_pem(pki.other_server_cert(), os.get());
  write_pem(pki.other_server_key(), os_key.get());
  return pki;
}

}  // namespace fedpp_test
