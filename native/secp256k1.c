/*
 * BIP-340 signatures through the system's libsecp256k1 (Debian: libsecp256k1-dev), for
 * src/protocol/schnorr.ts. Three functions, each checking every argument's type and length
 * before libsecp256k1 sees it:
 *   verify(sig64, msg32, xonly32) -> boolean   (false for a key that is not on the curve)
 *   keypair(secret32) -> Uint8Array(96)         (null for an invalid secret key)
 *   sign(msg32, keypair96, aux32) -> Uint8Array(64)
 * A keypair made once per secret key saves the base-point multiplication that deriving the
 * public key costs on every signature.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <secp256k1.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>

/* One context for the process (every Node environment, worker threads included), made once. */
static secp256k1_context *ctx;
static int ctx_ready;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;

/* libsecp256k1 aborts the process on an illegal argument by default; here the call returns 0
 * instead, and every return value is checked. */
static void ignore_illegal(const char *message, void *data) {
  (void)message;
  (void)data;
}

static void make_context(void) {
  unsigned char seed[32];
  ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
  if (!ctx) return;
  secp256k1_context_set_illegal_callback(ctx, ignore_illegal, NULL);
  /* Blinding against side channels (libsecp256k1's recommendation for signing contexts). */
  ctx_ready = getrandom(seed, sizeof seed, 0) == sizeof seed && secp256k1_context_randomize(ctx, seed);
  memset(seed, 0, sizeof seed);
}

/* The bytes of a Uint8Array argument of exactly `len` bytes, or NULL (a TypeError is thrown). */
static const unsigned char *bytes_arg(napi_env env, napi_value value, size_t len, const char *name) {
  bool is_typed = false;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) {
    napi_throw_type_error(env, NULL, name);
    return NULL;
  }
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  if (napi_get_typedarray_info(env, value, &type, &length, &data, NULL, NULL) != napi_ok || type != napi_uint8_array || length != len) {
    napi_throw_type_error(env, NULL, name);
    return NULL;
  }
  return (const unsigned char *)data;
}

static napi_value new_bytes(napi_env env, const unsigned char *src, size_t len) {
  void *data = NULL;
  napi_value buffer, array;
  if (napi_create_arraybuffer(env, len, &data, &buffer) != napi_ok) return NULL;
  memcpy(data, src, len);
  if (napi_create_typedarray(env, napi_uint8_array, len, buffer, 0, &array) != napi_ok) return NULL;
  return array;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != want) {
    napi_throw_type_error(env, NULL, "wrong number of arguments");
    return 0;
  }
  return 1;
}

static napi_value verify(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  const unsigned char *sig = bytes_arg(env, argv[0], 64, "signature must be 64 bytes");
  if (!sig) return NULL;
  const unsigned char *msg = bytes_arg(env, argv[1], 32, "message must be 32 bytes");
  if (!msg) return NULL;
  const unsigned char *key = bytes_arg(env, argv[2], 32, "x-only public key must be 32 bytes");
  if (!key) return NULL;
  secp256k1_xonly_pubkey pubkey;
  int ok = secp256k1_xonly_pubkey_parse(ctx, &pubkey, key) && secp256k1_schnorrsig_verify(ctx, sig, msg, 32, &pubkey);
  napi_value result;
  napi_get_boolean(env, ok, &result);
  return result;
}

static napi_value keypair(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  const unsigned char *secret = bytes_arg(env, argv[0], 32, "secret key must be 32 bytes");
  if (!secret) return NULL;
  secp256k1_keypair pair;
  napi_value result;
  if (!secp256k1_keypair_create(ctx, &pair, secret)) {
    napi_get_null(env, &result);
    return result;
  }
  result = new_bytes(env, pair.data, sizeof pair.data);
  memset(&pair, 0, sizeof pair);
  return result;
}

static napi_value sign(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  const unsigned char *msg = bytes_arg(env, argv[0], 32, "message must be 32 bytes");
  if (!msg) return NULL;
  const unsigned char *pair_bytes = bytes_arg(env, argv[1], sizeof(secp256k1_keypair), "keypair must be 96 bytes");
  if (!pair_bytes) return NULL;
  const unsigned char *aux = bytes_arg(env, argv[2], 32, "auxiliary randomness must be 32 bytes");
  if (!aux) return NULL;
  secp256k1_keypair pair;
  memcpy(pair.data, pair_bytes, sizeof pair.data);
  unsigned char sig[64];
  int ok = secp256k1_schnorrsig_sign32(ctx, sig, msg, &pair, aux);
  memset(&pair, 0, sizeof pair);
  if (!ok) {
    napi_throw_error(env, NULL, "signing failed");
    return NULL;
  }
  return new_bytes(env, sig, 64);
}

static napi_value init(napi_env env, napi_value exports) {
  pthread_once(&ctx_once, make_context);
  if (!ctx_ready) {
    napi_throw_error(env, NULL, "libsecp256k1 context setup failed");
    return NULL;
  }
  napi_property_descriptor functions[] = {
    {"verify", NULL, verify, NULL, NULL, NULL, napi_enumerable, NULL},
    {"keypair", NULL, keypair, NULL, NULL, NULL, napi_enumerable, NULL},
    {"sign", NULL, sign, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, 3, functions) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
