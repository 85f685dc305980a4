@testable import ChildGeneration
import Testing

/// CLINE_ARGS is split into argv words before the placeholders are filled in.
@Suite struct ClineArgumentsTests {
    @Test func templateSplittingGroupsQuotedWords() {
        #expect(ClineGenerator.split(#"-y --json -c {repo} "two words" 'a "b"' {prompt}"#)
                == ["-y", "--json", "-c", "{repo}", "two words", #"a "b""#, "{prompt}"])
        #expect(ClineGenerator.split("  spaced \t out  ") == ["spaced", "out"])
        #expect(ClineGenerator.split(#"a"b c"d"#) == ["ab cd"], "quotes join with the letters around them")
        #expect(ClineGenerator.split(#"-t """#) == ["-t", ""], "an empty quoted word is kept")
        #expect(ClineGenerator.split("").isEmpty)
    }
}
