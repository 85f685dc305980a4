import CCurl
import CCurlShims
import Foundation
import RunnerCore

/// A libcurl failure (transport level: DNS, connect, TLS, timeout, size cap).
public struct CurlError: Error, Sendable, CustomStringConvertible {
    public let code: UInt32
    public let message: String
    public var isTimeout: Bool { code == CURLE_OPERATION_TIMEDOUT.rawValue }
    public var description: String { message }
}

/// An HTTP response: status and body.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var body: Data
}

/// Collects the response body up to a cap (reached through libcurl's userdata).
private final class BodySink {
    var data = Data()
    let cap: Int
    var overflowed = false
    init(cap: Int) { self.cap = cap }
}

private let writeCallback: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = {
    ptr, size, count, userdata in
    let sink = Unmanaged<BodySink>.fromOpaque(userdata!).takeUnretainedValue()
    let n = size * count
    if sink.data.count + n > sink.cap {
        sink.overflowed = true
        return 0 // makes libcurl stop with CURLE_WRITE_ERROR
    }
    if let ptr { sink.data.append(UnsafeRawPointer(ptr).assumingMemoryBound(to: UInt8.self), count: n) }
    return n
}

/// One owned libcurl easy handle (freed in deinit), used for a single
/// blocking POST. TLS verification stays on with the system CA bundle;
/// redirects are not followed; only http and https are allowed.
final class CurlEasy {
    private let handle: UnsafeMutableRawPointer

    private static let initialized: Bool = {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        return true
    }()

    init() throws {
        _ = Self.initialized
        guard let h = curl_easy_init() else { throw CurlError(code: 0, message: "curl_easy_init failed") }
        handle = h
    }

    deinit { curl_easy_cleanup(handle) }

    private func check(_ rc: CURLcode, _ what: String) throws {
        if rc != CURLE_OK { throw CurlError(code: rc.rawValue, message: "\(what): \(String(cString: curl_easy_strerror(rc)))") }
    }

    /// POSTs `body` to `url` with `headers` (a GET when `body` is nil);
    /// returns the response (any status). With `unixSocket`, the connection
    /// goes to that socket (an egress proxy's route), never through an
    /// environment proxy.
    func post(_ url: String, headers: [String], body: Data?, connectTimeout: Int, totalTimeout: Int,
              maxResponseBytes: Int, unixSocket: String? = nil) throws -> HTTPResponse {
        var list: UnsafeMutablePointer<curl_slist>?
        for h in headers { list = curl_slist_append(list, h) }
        defer { curl_slist_free_all(list) }
        let sink = BodySink(cap: maxResponseBytes)
        let payload = [UInt8](body ?? Data())
        return try withExtendedLifetime(sink) {
            try payload.withUnsafeBytes { raw in
                try check(cshims_curl_setopt_ptr(handle, CURLOPT_URL, url), "url")
                try check(cshims_curl_setopt_ptr(handle, CURLOPT_PROTOCOLS_STR, "http,https"), "protocols")
                try check(cshims_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1), "nosignal")
                try check(cshims_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0), "redirects")
                try check(cshims_curl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 1), "verifypeer")
                try check(cshims_curl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 2), "verifyhost")
                try check(cshims_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT, connectTimeout), "connect timeout")
                try check(cshims_curl_setopt_long(handle, CURLOPT_TIMEOUT, totalTimeout), "timeout")
                try check(cshims_curl_setopt_ptr(handle, CURLOPT_HTTPHEADER, list), "headers")
                if let unixSocket {
                    try check(cshims_curl_setopt_ptr(handle, CURLOPT_UNIX_SOCKET_PATH, unixSocket), "unix socket")
                    try check(cshims_curl_setopt_ptr(handle, CURLOPT_PROXY, ""), "no proxy")
                }
                if body == nil {
                    try check(cshims_curl_setopt_long(handle, CURLOPT_HTTPGET, 1), "get")
                } else {
                    try check(cshims_curl_setopt_ptr(handle, CURLOPT_POSTFIELDS, raw.baseAddress), "body")
                    try check(cshims_curl_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(raw.count)), "body size")
                }
                try check(cshims_curl_setopt_write(handle, writeCallback), "write callback")
                try check(cshims_curl_setopt_ptr(handle, CURLOPT_WRITEDATA, Unmanaged.passUnretained(sink).toOpaque()), "write data")
                let rc = curl_easy_perform(handle)
                if sink.overflowed {
                    throw CurlError(code: CURLE_WRITE_ERROR.rawValue,
                                    message: "response larger than the cap of \(maxResponseBytes) bytes")
                }
                try check(rc, "request")
                var status = 0
                try check(cshims_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status), "status")
                return HTTPResponse(status: status, body: sink.data)
            }
        }
    }
}
