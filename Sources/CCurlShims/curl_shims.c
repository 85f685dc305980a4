// See include/CCurlShims.h for why these exist.
#include "CCurlShims.h"

CURLcode cshims_curl_setopt_long(CURL *h, CURLoption opt, long value) {
    return curl_easy_setopt(h, opt, value);
}
CURLcode cshims_curl_setopt_ptr(CURL *h, CURLoption opt, const void *value) {
    return curl_easy_setopt(h, opt, value);
}
CURLcode cshims_curl_setopt_write(CURL *h, size_t (*fn)(char *, size_t, size_t, void *)) {
    return curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fn);
}
CURLcode cshims_curl_setopt_off(CURL *h, CURLoption opt, curl_off_t value) {
    return curl_easy_setopt(h, opt, value);
}
CURLcode cshims_curl_getinfo_long(CURL *h, CURLINFO info, long *out) {
    return curl_easy_getinfo(h, info, out);
}

CURLcode cshims_curl_setopt_header(CURL *h, size_t (*fn)(char *, size_t, size_t, void *)) {
    return curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, fn);
}
