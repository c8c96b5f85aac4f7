namespace PrefPipe.Infra.Tests.K8s;

/// <summary>tools/validate-k8s.mjs checks every manifest under infra/k8s against the Kubernetes and KEDA schemas.</summary>
public sealed class ManifestValidationTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("prefpipe-k8s-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    internal static async Task<ProcessResult> ValidateAsync(string? folder = null)
    {
        var modules = InfraPaths.Tools("node_modules", "kubernetes-models");
        Assert.True(Directory.Exists(modules), $"{modules} is missing: building tests/Infra.Tests runs `npm ci` in tools/ (build/NodeTools.targets).");
        string[] arguments = folder is null ? [InfraPaths.Tools("validate-k8s.mjs")] : [InfraPaths.Tools("validate-k8s.mjs"), folder];
        return await ChildProcess.RunAsync("node", arguments, InfraPaths.RepositoryRoot);
    }

    [Fact]
    public async Task Validate_RepositoryManifests_AllValid()
    {
        var result = await ValidateAsync();

        Assert.True(result.ExitCode == 0, result.ToString());
        // namespace, service account, 2 config maps, PVC, CronJob, TriggerAuthentication, ScaledJob, 2 Jobs, kustomization.
        Assert.Contains("validate-k8s: 11 document(s) in 9 file(s) valid", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_BrokenJob_FailsNamingFileKindNameAndField()
    {
        await File.WriteAllTextAsync(Path.Combine(_temp, "broken.yaml"), """
            apiVersion: batch/v1
            kind: Job
            metadata:
              name: broken-workers
            spec:
              completionMode: Indexed
              completions: four
              template:
                spec:
                  restartPolicy: Never
                  containers:
                    - name: prefpipe
                      image: prefpipe
            """);

        var result = await ValidateAsync(_temp);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("broken.yaml: Job/broken-workers: /spec/completions must be integer", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_BrokenScaledJob_FailsOnKedaSchema()
    {
        // KEDA trigger metadata values are strings; an unquoted number is the usual mistake.
        await File.WriteAllTextAsync(Path.Combine(_temp, "scaledjob.yaml"), """
            apiVersion: keda.sh/v1alpha1
            kind: ScaledJob
            metadata:
              name: blob
            spec:
              jobTargetRef:
                template:
                  spec:
                    containers:
                      - name: prefpipe
                        image: prefpipe
              triggers:
                - type: azure-queue
                  metadata:
                    queueName: blob-created
                    queueLength: 1
            """);

        var result = await ValidateAsync(_temp);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("scaledjob.yaml: ScaledJob/blob: /spec/triggers/0/metadata/queueLength must be string", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_UnknownApiVersionOrMissingResource_Fails()
    {
        await File.WriteAllTextAsync(Path.Combine(_temp, "kustomization.yaml"), """
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            resources:
              - missing.yaml
              - widget.yaml
            """);
        await File.WriteAllTextAsync(Path.Combine(_temp, "widget.yaml"), """
            apiVersion: example.com/v1
            kind: Widget
            metadata:
              name: w
            """);

        var result = await ValidateAsync(_temp);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("kustomization.yaml: Kustomization: resource 'missing.yaml' does not exist", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("widget.yaml: Widget/w: apiVersion 'example.com/v1' has no schema here", result.StandardError, StringComparison.Ordinal);
    }
}
