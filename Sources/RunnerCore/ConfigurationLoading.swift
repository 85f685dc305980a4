import Foundation

extension RunnerConfiguration {
    /// EX_CONFIG: what every executable exits with for a configuration it
    /// cannot use (a `ConfigurationError`, or a MONGODB_URI libmongoc refuses).
    public static let exitStatus: Int32 = 78

    /// The configuration every executable starts from: `envFile`, else
    /// `./.env` when it exists, overlaid by the process environment, then
    /// validated. Throws `ConfigurationError` naming the variable.
    public static func load(envFile: String?,
                            process: [String: String] = ProcessInfo.processInfo.environment) throws -> RunnerConfiguration {
        let path = envFile ?? (FileManager.default.fileExists(atPath: ".env") ? ".env" : nil)
        var config = try RunnerConfiguration(environment: try environment(envFile: path, process: process))
        config.envFilePath = path.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        return config
    }

    /// Writes `program: message` on stderr: how an executable reports a
    /// configuration it cannot use, before it exits `exitStatus`.
    public static func report(_ message: String, program: String) {
        FileHandle.standardError.write(Data("\(program): \(message)\n".utf8))
    }
}
