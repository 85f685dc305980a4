import Foundation
import RunnerCore

extension JobStore {
    /// GIT_TOKEN_SOURCE=user: the token in `field` (a dotted path) of the user
    /// whose `_id` is `userId` (as a string or an ObjectId), else whose
    /// `userId`/`user_id` field is. Nil when there is no such user or token.
    /// Only the field's top-level part is read (a dotted projection comes
    /// back flat on some servers), and the rest of the path from its answer.
    public func userToken(userId: String, collection: String, field: String) async throws -> String? {
        try await userString(userId: userId, collection: collection, field: field)
    }

    /// The string in `field` (a dotted path) of the user found as `userToken`
    /// finds one (e.g. the GitHub login of GIT_USER_LOGIN_FIELD); nil when
    /// there is no such user, or the field is missing or empty.
    public func userString(userId: String, collection: String, field: String) async throws -> String? {
        var ids: [JSONValue] = [.string(userId)]
        if userId.count == 24, userId.allSatisfy(\.isHexDigit) { ids.append(["$oid": .string(userId.lowercased())]) }
        let byId: JSONValue = ["_id": ["$in": .array(ids)]]
        let projection: JSONValue = [String(field.split(separator: ".").first ?? Substring(field)): 1]
        let doc = try await pool.run(collection) { coll in
            if let d = try CollectionOps.find(coll, filter: byId, limit: 1, projection: projection).first { return d }
            for name in DocumentFields.userId {
                if let d = try CollectionOps.find(coll, filter: [name: .string(userId)], limit: 1, projection: projection).first {
                    return d
                }
            }
            return nil
        }
        var value: JSONValue? = doc
        for part in field.split(separator: ".") { value = value?[String(part)] }
        return value?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
    }
}
