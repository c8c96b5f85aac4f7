namespace PrefPipe.Infra.Tests.K8s;

/// <summary>
/// tools/lint-yaml.mjs (yamllint's default rules in strict mode, lines up to 140 characters; installed with the other
/// Node tools by the build) over the manifests and pipeline files.
/// </summary>
public sealed class YamlLintTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("prefpipe-yamllint-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    private static Task<ProcessResult> LintAsync(params string[] paths)
    {
        var modules = InfraPaths.Tools("node_modules", "yaml");
        Assert.True(Directory.Exists(modules), $"{modules} is missing: building tests/Infra.Tests runs `npm ci` in tools/ (build/NodeTools.targets).");
        return ChildProcess.RunAsync("node", [InfraPaths.Tools("lint-yaml.mjs"), .. paths], InfraPaths.RepositoryRoot);
    }

    private async Task<ProcessResult> LintTextAsync(string text)
    {
        string file = Path.Combine(_temp, "doc.yaml");
        await File.WriteAllTextAsync(file, text);
        return await LintAsync(file);
    }

    [Fact]
    public async Task Lint_ManifestsAndPipelines_Clean()
    {
        var result = await LintAsync("infra/k8s", "pipelines");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("lint-yaml: 10 file(s) clean", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Lint_DuplicateKey_FailsNamingFileAndLine()
    {
        // It parses in lenient YAML readers (the last `image` wins silently); the linter refuses it.
        string file = Path.Combine(_temp, "job.yaml");
        await File.WriteAllTextAsync(file, "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: x\nspec:\n  template:\n    spec:\n      containers:\n        - name: a\n          image: one\n          image: two\n");

        var result = await LintAsync(file);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("job.yaml:11:11: [error] duplication of key \"image\" in mapping (key-duplicates)", result.StandardOutput, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("spec:\n  containers:\n  - name: a\n", "3:3: [error] wrong indentation: expected 4 but found 2 (indentation)")]
    [InlineData("spec:\n  template:\n     spec: {}\n", "3:6: [error] wrong indentation: expected 4 but found 5 (indentation)")]
    [InlineData("name: a \n", "1:8: [error] trailing spaces (trailing-spaces)")]
    [InlineData("readOnly: yes\n", "1:11: [error] truthy value should be one of [false, true] (truthy)")]
    [InlineData("drop: [ \"ALL\" ]\n", "1:8: [error] too many spaces inside brackets (brackets)")]
    [InlineData("name:  a\n", "1:7: [error] too many spaces after colon (colons)")]
    [InlineData("#comment\nname: a\n", "1:2: [error] missing starting space in comment (comments)")]
    [InlineData("spec:\n  a: 1\n    # misplaced\n  b: 2\n", "3:5: [error] comment not indented like content (comments-indentation)")]
    [InlineData("a: 1\n\n\n\nb: 2\n", "4:1: [error] too many blank lines (3 > 2) (empty-lines)")]
    [InlineData("name: a", "1:8: [error] no new line character at the end of file (new-line-at-end-of-file)")]
    [InlineData("spec: [\n", "2:1: [error] syntax error: ")]
    public async Task Lint_StyleProblem_FailsNamingLineColumnAndRule(string yaml, string expected)
    {
        var result = await LintTextAsync(yaml);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"doc.yaml:{expected}", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Lint_LineOver140Characters_FailsUnlessOneUnbreakableWord()
    {
        string words = "description: " + string.Join(' ', Enumerable.Repeat("word", 30)) + "\n";
        string url = "# https://example.com/" + new string('x', 150) + "\n";

        var tooLong = await LintTextAsync(words);
        var unbreakable = await LintTextAsync(url);

        Assert.Equal(1, tooLong.ExitCode);
        Assert.Contains($"doc.yaml:1:141: [error] line too long ({words.Length - 1} > 140 characters) (line-length)", tooLong.StandardOutput, StringComparison.Ordinal);
        Assert.True(unbreakable.ExitCode == 0, unbreakable.ToString());
    }

    [Fact]
    public async Task Lint_QuotedOrTaggedYesAndBlockScalars_Clean()
    {
        var result = await LintTextAsync("a: &x\n  b: \"yes\"\n  c: !!str on\nd: *x\ne: |\n  text\n    more\n# after\nf:\n  - - 1\n    - 2\n  -\n    k: v\n");

        Assert.True(result.ExitCode == 0, result.ToString());
    }
}
