/* SPDX-License-Identifier: MIT */
/* Thin EVP wrappers so no other file includes OpenSSL's hash APIs. */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "digest.h"

struct pf_sha256 {
	EVP_MD_CTX	*ctx;
};

static EVP_MD *sha256_fetched;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void
sha256_fetch(void)
{
	/* A failure leaves no error behind for SSL_get_error to find. */
	ERR_set_mark();
	sha256_fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
	ERR_pop_to_mark();
}

/*
 * SHA-256 fetched once: EVP_sha256() makes every init look the digest up
 * again in OpenSSL's provider store, under a lock (2 % of either side's
 * CPU in a transfer of 10,000 small files, a few hashes each).
 */
static const EVP_MD *
sha256_md(void)
{
	pthread_once(&sha256_once, sha256_fetch);
	return sha256_fetched != NULL ? sha256_fetched : EVP_sha256();
}

struct pf_sha256 *
pf_sha256_new(void)
{
	struct pf_sha256 *h;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	if ((h->ctx = EVP_MD_CTX_new()) == NULL) {
		free(h);
		return NULL;
	}
	return h;
}

enum pf_status
pf_sha256_init(struct pf_sha256 *h)
{
	return EVP_DigestInit_ex(h->ctx, sha256_md(), NULL) == 1 ?
	    PF_OK : PF_EINTERNAL;
}

enum pf_status
pf_sha256_update(struct pf_sha256 *h, const void *p, size_t n)
{
	return EVP_DigestUpdate(h->ctx, p, n) == 1 ? PF_OK : PF_EINTERNAL;
}

enum pf_status
pf_sha256_final(struct pf_sha256 *h, uint8_t *out)
{
	unsigned int len = 0;

	return EVP_DigestFinal_ex(h->ctx, out, &len) == 1 &&
	    len == PF_SHA256_LEN ? PF_OK : PF_EINTERNAL;
}

void
pf_sha256_free(struct pf_sha256 *h)
{
	if (h == NULL)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

enum pf_status
pf_sha256(const void *p, size_t n, uint8_t out[PF_SHA256_LEN])
{
	unsigned int len = 0;

	return EVP_Digest(p, n, out, &len, sha256_md(), NULL) == 1 &&
	    len == PF_SHA256_LEN ? PF_OK : PF_EINTERNAL;
}

enum pf_status
pf_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
    uint8_t out[PF_SHA256_LEN])
{
	unsigned int len = 0;

	if (keylen > INT32_MAX)
		return PF_EINTERNAL;
	if (HMAC(EVP_sha256(), key, (int)keylen, msg, msglen, out,
	    &len) == NULL || len != PF_SHA256_LEN)
		return PF_EINTERNAL;
	return PF_OK;
}

enum pf_status
pf_pbkdf2_sha256(const char *pass, size_t passlen, const uint8_t *salt,
    size_t saltlen, unsigned iterations, uint8_t out[PF_SHA256_LEN])
{
	if (passlen > INT32_MAX || saltlen > INT32_MAX ||
	    iterations == 0 || iterations > INT32_MAX)
		return PF_EINTERNAL;
	return PKCS5_PBKDF2_HMAC(pass, (int)passlen, salt, (int)saltlen,
	    (int)iterations, EVP_sha256(), PF_SHA256_LEN, out) == 1 ?
	    PF_OK : PF_EINTERNAL;
}

enum pf_status
pf_random(void *p, size_t n)
{
	if (n > INT32_MAX)
		return PF_EINTERNAL;
	return RAND_bytes(p, (int)n) == 1 ? PF_OK : PF_EINTERNAL;
}

bool
pf_equal_ct(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

void
pf_hex_encode(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0xf];
	}
	out[2 * n] = '\0';
}

static int
nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
pf_hex_decode(const char *hex, uint8_t *out, size_t n)
{
	if (strlen(hex) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

char *
pf_base64_encode(const uint8_t *p, size_t n)
{
	char *out;

	if (n > (INT32_MAX / 4) * 3)
		return NULL;
	if ((out = malloc((n + 2) / 3 * 4 + 1)) == NULL)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

long
pf_base64_decode(const char *b64, uint8_t *out, size_t cap)
{
	size_t len = strlen(b64), pad = 0;
	unsigned char *tmp;
	long n;

	/* EVP_DecodeBlock accepts sloppy input; insist on canonical form. */
	if (len % 4 != 0 || len > (size_t)INT32_MAX)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = b64[i];

		if (c == '=') {
			if (i < len - 2)
				return -1;
			pad++;
		} else if (pad > 0 || !((c >= 'A' && c <= 'Z') ||
		    (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '+' || c == '/'))
			return -1;
	}
	if (len / 4 * 3 - pad > cap)
		return -1;
	if ((tmp = malloc(len / 4 * 3 + 1)) == NULL)
		return -1;
	n = EVP_DecodeBlock(tmp, (const unsigned char *)b64, (int)len);
	if (n >= 0) {
		n -= (long)pad;
		memcpy(out, tmp, (size_t)n);
	}
	pf_wipe(tmp, len / 4 * 3 + 1);
	free(tmp);
	return n;
}

void
pf_thread_cleanup(void)
{
	OPENSSL_thread_stop();
}

void
pf_wipe(void *p, size_t n)
{
	OPENSSL_cleanse(p, n);
}
