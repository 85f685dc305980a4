#if canImport(Glibc)
import Glibc
#endif

/// Reads a keyed request's body from the client (RFC 9112 §6), bounded: the
/// proxy holds at most `cap` body bytes per request (plus a little framing),
/// read straight into the one buffer that is sent upstream.
enum RequestBody {
    /// The largest body a keyed route accepts (16 MiB); a larger one is a 413.
    static let cap = 16 << 20
    /// How long a whole body may take to arrive (each read is also bounded
    /// by the socket's SO_RCVTIMEO), so a trickled one cannot hold a slot.
    static let timeLimit: Duration = .seconds(300)

    /// Why a body was not read.
    enum Failure: Error, Equatable {
        /// Malformed or contradictory framing: a 400, with the reason.
        case bad(String)
        /// More than `cap` bytes: a 413.
        case tooLarge
        /// The client went away or stopped sending (the socket's receive
        /// timeout), or the body took longer than `timeLimit`.
        case closed
    }

    /// How the body is delimited.
    enum Framing: Equatable {
        case none
        case length(Int)
        case chunked
    }

    /// The framing `head` declares: one Content-Length (repeats must agree),
    /// or Transfer-Encoding exactly `chunked`, never both.
    static func framing(_ head: HTTPHead, cap: Int = cap) -> Result<Framing, Failure> {
        let lengths = head.values("content-length").flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }
            .map { String($0.trimmingOWS) }
        let codings = head.values("transfer-encoding").flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }
            .map { $0.trimmingOWS.lowercased() }
        if !lengths.isEmpty && !codings.isEmpty { return .failure(.bad("both Content-Length and Transfer-Encoding")) }
        if !codings.isEmpty {
            return codings == ["chunked"] ? .success(.chunked) : .failure(.bad("unsupported Transfer-Encoding"))
        }
        guard let text = lengths.first else { return .success(.none) }
        guard lengths.allSatisfy({ $0 == text }) else { return .failure(.bad("conflicting Content-Length")) }
        guard !text.isEmpty, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else {
            return .failure(.bad("invalid Content-Length"))
        }
        let digits = text.drop { $0 == "0" }
        guard digits.count <= 18, let length = Int(digits.isEmpty ? "0" : String(digits)) else {
            return .failure(.bad("Content-Length out of range"))
        }
        return length > cap ? .failure(.tooLarge) : .success(.length(length))
    }

    /// The body from `fd`, after the bytes already read past the head (`early`).
    static func read(_ fd: Int32, _ framing: Framing, early: [UInt8], cap: Int = cap) -> Result<[UInt8], Failure> {
        switch framing {
        case .none: return .success([])
        case .length(let length): return readLength(fd, length, early: early, deadline: ContinuousClock.now + timeLimit)
        case .chunked:
            var reader = ChunkedReader(fd: fd, data: early, cap: cap, deadline: ContinuousClock.now + timeLimit)
            do { return .success(try reader.decode()) } catch { return .failure(error) }
        }
    }

    /// Exactly `length` bytes, read as they arrive.
    static func readLength(_ fd: Int32, _ length: Int, early: [UInt8], deadline: ContinuousClock.Instant) -> Result<[UInt8], Failure> {
        // Grown as bytes arrive: a head that only declares a length pins nothing.
        var body = Array(early.prefix(length))
        var buf = [UInt8](repeating: 0, count: min(65536, max(length - body.count, 1)))
        while body.count < length {
            if ContinuousClock.now > deadline { return .failure(.closed) }
            let want = min(buf.count, length - body.count)
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, want) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return .failure(.closed) }
            body += buf[0..<n]
        }
        return .success(body)
    }
}

/// Decodes a chunked body in place: decoded bytes are moved to the front of
/// the one buffer the raw bytes are read into, so a body costs its size plus
/// at most about 1 MiB of framing, never a second copy.
struct ChunkedReader {
    let fd: Int32
    var data: [UInt8]
    let cap: Int
    let deadline: ContinuousClock.Instant
    /// data[0..<out] is decoded body; data[pos...] is not yet read.
    var out = 0, pos = 0

    /// The longest chunk-size line (extensions included) and the most trailer bytes.
    static let lineLimit = 4096, trailerLimit = 32768

    init(fd: Int32, data: [UInt8], cap: Int, deadline: ContinuousClock.Instant) {
        self.fd = fd
        self.data = data
        self.cap = cap
        self.deadline = deadline
    }

    mutating func decode() throws(RequestBody.Failure) -> [UInt8] {
        while true {
            let line = try readLine(limit: Self.lineLimit)
            let sizeText = (line.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? "").trimmingOWS
            guard !sizeText.isEmpty, sizeText.allSatisfy({ $0.isASCII && $0.isHexDigit }) else { throw .bad("invalid chunk size") }
            let digits = sizeText.drop { $0 == "0" }
            guard digits.count <= 15, let size = Int(digits.isEmpty ? "0" : String(digits), radix: 16) else {
                throw .bad("chunk size out of range")
            }
            if size == 0 { break }
            guard size <= cap - out else { throw .tooLarge }
            try need(size + 2)
            guard data[pos + size] == 13, data[pos + size + 1] == 10 else { throw .bad("chunk without its CRLF") }
            if pos != out {
                let (from, to) = (pos, out)
                data.withUnsafeMutableBytes { raw in
                    _ = memmove(raw.baseAddress! + to, raw.baseAddress! + from, size)
                }
            }
            out += size
            pos += size + 2
            // Framing kept in the buffer stays small: drop it once it passes 1 MiB.
            if pos - out > 1 << 20 {
                data.removeSubrange(out..<pos)
                pos = out
            }
        }
        // The trailer section (ignored) up to its blank line.
        var trailers = 0
        while true {
            let start = pos
            let line = try readLine(limit: Self.trailerLimit - trailers)
            if line.isEmpty { break }
            // Bytes, not characters (combining marks would count as one), and dropped as read.
            trailers += pos - start
            data.removeSubrange(start..<pos)
            pos = start
        }
        data.removeSubrange(out...)
        return data
    }

    /// The next line (without its CRLF), at most `limit` bytes.
    mutating func readLine(limit: Int) throws(RequestBody.Failure) -> String {
        var searched = pos
        while true {
            if let end = data[searched...].firstRange(of: [13, 10]) {
                let line = String(decoding: data[pos..<end.lowerBound], as: UTF8.self)
                guard end.lowerBound - pos <= limit else { throw .bad("chunk framing line too long") }
                pos = end.upperBound
                return line
            }
            guard data.count - pos <= limit else { throw .bad("chunk framing line too long") }
            searched = max(pos, data.count - 1)
            try fill()
        }
    }

    /// Reads until `count` bytes from `pos` are in the buffer.
    mutating func need(_ count: Int) throws(RequestBody.Failure) {
        while data.count - pos < count { try fill() }
    }

    /// Reads once more from the client, straight into the buffer.
    mutating func fill() throws(RequestBody.Failure) {
        if ContinuousClock.now > deadline { throw .closed }
        let old = data.count, room = 65536, fd = self.fd
        data.append(contentsOf: repeatElement(0, count: room))
        while true {
            let n = data.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + old, room) }
            if n < 0 && errno == EINTR { continue }
            data.removeLast(room - max(n, 0))
            if n <= 0 { throw .closed }
            return
        }
    }
}
