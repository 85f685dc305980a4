// CCurlShims: typed wrappers for libcurl's variadic functions, which Swift
// cannot call. A target of its own so that only the job child (Generation)
// links libcurl; the supervisor stays free of it and its dependencies.
#ifndef CCURLSHIMS_H
#define CCURLSHIMS_H

#include <curl/curl.h>

/// curl_easy_setopt with a long argument.
CURLcode cshims_curl_setopt_long(CURL *h, CURLoption opt, long value);
/// curl_easy_setopt with a pointer (string, slist, userdata) argument.
CURLcode cshims_curl_setopt_ptr(CURL *h, CURLoption opt, const void *value);
/// curl_easy_setopt for CURLOPT_WRITEFUNCTION.
CURLcode cshims_curl_setopt_write(CURL *h, size_t (*fn)(char *, size_t, size_t, void *));
/// curl_easy_setopt for CURLOPT_HEADERFUNCTION (the egress proxy relays a
/// provider's response head as soon as it arrives).
CURLcode cshims_curl_setopt_header(CURL *h, size_t (*fn)(char *, size_t, size_t, void *));
/// curl_easy_setopt with a curl_off_t argument (CURLOPT_*_LARGE).
CURLcode cshims_curl_setopt_off(CURL *h, CURLoption opt, curl_off_t value);
/// curl_easy_getinfo for a long result (variadic).
CURLcode cshims_curl_getinfo_long(CURL *h, CURLINFO info, long *out);

#endif
