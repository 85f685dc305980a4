import CCurl
import CCurlShims
import Foundation

/// A libcurl failure (transport level: DNS, connect, TLS, timeout, size cap).
public struct CurlError: Error, Sendable, CustomStringConvertible {
    public let code: UInt32
    public let message: String
    /// The HTTP proxy's answer to the CONNECT when a request through one
    /// failed (`CURLINFO_HTTP_CONNECTCODE`; 0: none, or no proxy).
    public var proxyStatus = 0
    public var isTimeout: Bool { code == CURLE_OPERATION_TIMEDOUT.rawValue }
    /// The receiver stopped the transfer (`CURLE_WRITE_ERROR`).
    public var isStoppedByReceiver: Bool { code == CURLE_WRITE_ERROR.rawValue }
    /// The connection failed or was cut (refused, reset, closed without an
    /// answer): worth another try when no byte of an answer was received.
    public var isConnectionFailure: Bool {
        [CURLE_COULDNT_CONNECT, CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING].map(\.rawValue).contains(code)
    }
    public var description: String { message }
}

/// An HTTP response: status and body.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var body: Data
    /// The final response's headers, names in lower case (the last of a repeated one).
    public var headers: [String: String] = [:]
}

/// Receives a response from libcurl's callbacks as it arrives: each header
/// line (status lines included), then body bytes. Returning false stops the
/// transfer (`CURLE_WRITE_ERROR`).
public protocol CurlReceiver: AnyObject {
    func header(_ line: String) -> Bool
    func body(_ bytes: UnsafeRawBufferPointer) -> Bool
}

/// How long a request may take.
public enum CurlTimeout: Sendable {
    /// At most this many seconds in all.
    case total(Int)
    /// Ends only after this many seconds without a byte (model answers can take minutes).
    case stalled(Int)
}

/// One owned libcurl easy handle (freed in deinit): the one place the job
/// child's and the egress proxy's HTTP clients set libcurl's options. TLS
/// verification stays on with the system CA bundle; redirects are not
/// followed; only http and https are allowed; never an environment proxy;
/// no signals.
public final class CurlEasy {
    private let handle: UnsafeMutableRawPointer

    private static let initialized: Bool = {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        return true
    }()

    public init() throws {
        _ = Self.initialized
        guard let h = curl_easy_init() else { throw CurlError(code: 0, message: "curl_easy_init failed") }
        handle = h
    }

    deinit { curl_easy_cleanup(handle) }

    private func check(_ rc: CURLcode, _ what: String) throws {
        if rc != CURLE_OK { throw CurlError(code: rc.rawValue, message: "\(what): \(String(cString: curl_easy_strerror(rc)))") }
    }

    /// Sends one request (`body` nil: a GET, or a HEAD, with no body) and
    /// hands the response to `receiver`; returns the final status. libcurl's
    /// `Expect: 100-continue` (a wait of up to a second before a body over
    /// 1 MiB) is never sent. With `unixSocket`,
    /// the connection goes to that socket. With `proxy` (an http:// proxy URL),
    /// through a CONNECT tunnel of that proxy, for http and https URLs alike.
    /// Throws `CurlError` for a transport
    /// failure, or when the receiver stopped the transfer.
    public func perform(_ url: String, method: String = "POST", headers: [String], body: [UInt8]?, connectTimeout: Int,
                        timeout: CurlTimeout, unixSocket: String? = nil, proxy: String? = nil,
                        receiver: CurlReceiver) throws -> Int {
        var list: UnsafeMutablePointer<curl_slist>?
        for h in headers { list = curl_slist_append(list, h) }
        if !headers.contains(where: { $0.lowercased().hasPrefix("expect:") }) { list = curl_slist_append(list, "Expect:") }
        defer { curl_slist_free_all(list) }
        let payload = body ?? []
        return try withExtendedLifetime(receiver) {
            try payload.withUnsafeBytes { raw in
                try check(cshims_curl_setopt_ptr(handle, CURLOPT_URL, url), "url")
                try check(cshims_curl_setopt_ptr(handle, CURLOPT_PROTOCOLS_STR, "http,https"), "protocols")
                try check(cshims_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1), "nosignal")
                try check(cshims_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0), "redirects")
                try check(cshims_curl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 1), "verifypeer")
                try check(cshims_curl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 2), "verifyhost")
                try check(cshims_curl_setopt_ptr(handle, CURLOPT_PROXY, proxy ?? ""), "proxy")
                try check(cshims_curl_setopt_long(handle, CURLOPT_HTTPPROXYTUNNEL, proxy == nil ? 0 : 1), "proxy tunnel")
                try check(cshims_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT, connectTimeout), "connect timeout")
                switch timeout {
                case .total(let seconds):
                    try check(cshims_curl_setopt_long(handle, CURLOPT_TIMEOUT, seconds), "timeout")
                case .stalled(let seconds):
                    try check(cshims_curl_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1), "low speed")
                    try check(cshims_curl_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, seconds), "low speed time")
                }
                try check(cshims_curl_setopt_ptr(handle, CURLOPT_HTTPHEADER, list), "headers")
                if let unixSocket {
                    try check(cshims_curl_setopt_ptr(handle, CURLOPT_UNIX_SOCKET_PATH, unixSocket), "unix socket")
                }
                if body == nil, method == "GET" {
                    try check(cshims_curl_setopt_long(handle, CURLOPT_HTTPGET, 1), "get")
                } else if body == nil, method == "HEAD" {
                    // A HEAD answer has no body, whatever its Content-Length says.
                    try check(cshims_curl_setopt_long(handle, CURLOPT_NOBODY, 1), "head")
                } else {
                    if method != "POST" { try check(cshims_curl_setopt_ptr(handle, CURLOPT_CUSTOMREQUEST, method), "method") }
                    try check(cshims_curl_setopt_ptr(handle, CURLOPT_POSTFIELDS, raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)),
                              "body")
                    try check(cshims_curl_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(raw.count)), "body size")
                }
                let me = Unmanaged.passUnretained(receiver as AnyObject).toOpaque()
                try check(cshims_curl_setopt_header(handle, headerCallback), "header callback")
                try check(cshims_curl_setopt_ptr(handle, CURLOPT_HEADERDATA, me), "header data")
                try check(cshims_curl_setopt_write(handle, writeCallback), "write callback")
                try check(cshims_curl_setopt_ptr(handle, CURLOPT_WRITEDATA, me), "write data")
                do {
                    try check(curl_easy_perform(handle), "request")
                } catch var e as CurlError where proxy != nil {
                    var code = 0
                    _ = cshims_curl_getinfo_long(handle, CURLINFO_HTTP_CONNECTCODE, &code)
                    e.proxyStatus = code
                    throw e
                }
                var status = 0
                try check(cshims_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status), "status")
                return status
            }
        }
    }

    /// POSTs `body` to `url` with `headers` (a GET when `body` is nil) and
    /// returns the whole response (any status), at most `maxResponseBytes`.
    public func post(_ url: String, headers: [String], body: Data?, connectTimeout: Int, totalTimeout: Int,
                     maxResponseBytes: Int, unixSocket: String? = nil) throws -> HTTPResponse {
        try request(url, method: body == nil ? "GET" : "POST", headers: headers, body: body, connectTimeout: connectTimeout,
                    totalTimeout: totalTimeout, maxResponseBytes: maxResponseBytes, unixSocket: unixSocket)
    }

    /// Sends `method` to `url` (`body` nil: none) and returns the whole
    /// response (any status) with its headers, at most `maxResponseBytes`;
    /// through `proxy`'s CONNECT tunnel when one is given.
    public func request(_ url: String, method: String, headers: [String], body: Data?, connectTimeout: Int,
                        totalTimeout: Int, maxResponseBytes: Int, unixSocket: String? = nil,
                        proxy: String? = nil) throws -> HTTPResponse {
        let sink = BodySink(cap: maxResponseBytes)
        let status: Int
        do {
            status = try perform(url, method: method, headers: headers, body: body.map { [UInt8]($0) },
                                 connectTimeout: connectTimeout, timeout: .total(totalTimeout), unixSocket: unixSocket,
                                 proxy: proxy, receiver: sink)
        } catch let e as CurlError where e.isStoppedByReceiver && sink.overflowed {
            throw CurlError(code: e.code, message: "response larger than the cap of \(maxResponseBytes) bytes")
        }
        return HTTPResponse(status: status, body: sink.data, headers: sink.headers)
    }
}

/// Collects a response body up to a cap.
private final class BodySink: CurlReceiver {
    var data = Data()
    let cap: Int
    var overflowed = false
    var headers: [String: String] = [:]
    init(cap: Int) { self.cap = cap }
    func header(_ line: String) -> Bool {
        // A status line starts a response (a proxy's CONNECT answer, an interim 100): only the last one's headers count.
        if line.hasPrefix("HTTP/") { headers = [:]; return true }
        guard let colon = line.firstIndex(of: ":"), headers.count < 200 else { return true }
        headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        return true
    }
    func body(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if data.count + bytes.count > cap { overflowed = true; return false }
        data.append(contentsOf: bytes)
        return true
    }
}

private func receiver(_ userdata: UnsafeMutableRawPointer?) -> CurlReceiver {
    Unmanaged<AnyObject>.fromOpaque(userdata!).takeUnretainedValue() as! CurlReceiver
}

private let headerCallback: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = {
    ptr, size, count, userdata in
    let n = size * count
    guard let ptr else { return n }
    return receiver(userdata).header(String(decoding: UnsafeRawBufferPointer(start: ptr, count: n), as: UTF8.self)) ? n : 0
}

private let writeCallback: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = {
    ptr, size, count, userdata in
    let n = size * count
    guard let ptr else { return n }
    return receiver(userdata).body(UnsafeRawBufferPointer(start: ptr, count: n)) ? n : 0
}
