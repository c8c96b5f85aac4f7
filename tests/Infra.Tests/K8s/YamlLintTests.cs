namespace PrefPipe.Infra.Tests.K8s;

/// <summary>yamllint (apt; .ci/run installs it) in strict mode with the repository's .yamllint.yaml over the manifests and pipeline files.</summary>
public sealed class YamlLintTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("prefpipe-yamllint-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    private static Task<ProcessResult> LintAsync(params string[] paths) =>
        ChildProcess.RunAsync("yamllint", ["--strict", "--format", "parsable", "--config-file", Path.Combine(InfraPaths.RepositoryRoot, ".yamllint.yaml"), .. paths],
            InfraPaths.RepositoryRoot);

    [Fact]
    public async Task Lint_ManifestsAndPipelines_Clean()
    {
        var result = await LintAsync("infra/k8s", "pipelines");

        Assert.True(result.ExitCode == 0, result.ToString());
    }

    [Fact]
    public async Task Lint_DuplicateKeyAndBadIndentation_FailsNamingFileAndLine()
    {
        // Both parse in lenient YAML readers (the last `image` wins silently); yamllint refuses them.
        string file = Path.Combine(_temp, "job.yaml");
        await File.WriteAllTextAsync(file, "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: x\nspec:\n  template:\n    spec:\n      containers:\n        - name: a\n          image: one\n          image: two\n");

        var result = await LintAsync(file);

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("job.yaml:11:11: [error] duplication of key \"image\" in mapping (key-duplicates)", result.StandardOutput, StringComparison.Ordinal);
    }
}
