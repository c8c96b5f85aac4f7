using YamlDotNet.RepresentationModel;

namespace PrefPipe.Infra.Tests.K8s;

/// <summary>What the Kubernetes manifests must say for the deployment to work, beyond their schemas.</summary>
public sealed class ManifestContentTests
{
    private static List<YamlMappingNode> Documents(string file)
    {
        var stream = new YamlStream();
        using var reader = new StreamReader(InfraPaths.Infra("k8s", file));
        stream.Load(reader);
        return stream.Documents.Select(d => d.RootNode).OfType<YamlMappingNode>().ToList();
    }

    private static YamlMappingNode Single(string file, string kind) =>
        Documents(file).Single(d => Scalar(d, "kind") == kind);

    private static YamlNode Node(YamlNode node, params string[] path)
    {
        foreach (var key in path)
        {
            node = node switch
            {
                YamlMappingNode map when map.Children.TryGetValue(new YamlScalarNode(key), out var child) => child,
                YamlSequenceNode list when int.TryParse(key, out var index) && index < list.Children.Count => list.Children[index],
                _ => throw new KeyNotFoundException($"no '{key}' in {string.Join('.', path)}"),
            };
        }
        return node;
    }

    private static string Scalar(YamlNode node, params string[] path) => ((YamlScalarNode)Node(node, path)).Value!;

    private static List<string> Args(YamlNode podSpec) =>
        ((YamlSequenceNode)Node(podSpec, "containers", "0", "args")).Children.Select(a => ((YamlScalarNode)a).Value!).ToList();

    /// <summary>Every pod template in the kustomization, with where it is.</summary>
    private static IEnumerable<(string Where, YamlMappingNode Template)> PodTemplates() =>
    [
        ("cronjob", (YamlMappingNode)Node(Single("cronjob.yaml", "CronJob"), "spec", "jobTemplate", "spec", "template")),
        ("scaledjob", (YamlMappingNode)Node(Single("scaledjob.yaml", "ScaledJob"), "spec", "jobTargetRef", "template")),
        ("workers", (YamlMappingNode)Node(Single("workers-job.yaml", "Job"), "spec", "template")),
        ("trainer", (YamlMappingNode)Node(Single("trainer-job.yaml", "Job"), "spec", "template")),
    ];

    [Fact]
    public void WorkersJob_Indexed_ShardCountMatchesCompletionsAndParallelism()
    {
        var job = Single("workers-job.yaml", "Job");
        var spec = Node(job, "spec", "template", "spec");
        var env = ((YamlSequenceNode)Node(spec, "containers", "0", "env")).Children.Cast<YamlMappingNode>()
            .ToDictionary(e => Scalar(e, "name"), e => e);

        Assert.Equal("Indexed", Scalar(job, "spec", "completionMode"));
        Assert.Equal(Scalar(job, "spec", "completions"), Scalar(job, "spec", "parallelism"));
        Assert.Equal(Scalar(job, "spec", "completions"), Scalar(env["SHARD_COUNT"], "value"));
        Assert.Equal("metadata.annotations['batch.kubernetes.io/job-completion-index']",
            Scalar(env["JOB_COMPLETION_INDEX"], "valueFrom", "fieldRef", "fieldPath"));
        Assert.Equal(["worker", "--run", "$(PREFPIPE_RUN_ID)", "--stage", "$(PREFPIPE_STAGE)", "--shard", "$(JOB_COMPLETION_INDEX)/$(SHARD_COUNT)"], Args(spec));
        // A template per run: it must not start on `kubectl apply -k`.
        Assert.Equal("true", Scalar(job, "spec", "suspend"));
    }

    [Fact]
    public void TrainerJob_RequestsOneGpuFromTheCudaImage()
    {
        var job = Single("trainer-job.yaml", "Job");
        var container = Node(job, "spec", "template", "spec", "containers", "0");

        Assert.Equal("1", Scalar(container, "resources", "limits", "nvidia.com/gpu"));
        Assert.Equal("prefpipe-cuda", Scalar(container, "image"));
        Assert.Equal("true", Scalar(job, "spec", "suspend"));
    }

    [Fact]
    public void CronJobAndScaledJob_RunThePipelineFile()
    {
        Assert.Equal(["run", "/config/pipeline.yaml"], Args(Node(PodTemplates().First(t => t.Where == "cronjob").Template, "spec")));
        var serve = Node(PodTemplates().First(t => t.Where == "scaledjob").Template, "spec");
        Assert.Equal(["serve", "--config", "/config/pipeline.yaml", "--once", "--health-port", "8080"], Args(serve));
        // The probes ask serve's health endpoints on the port it listens on.
        var container = Node(serve, "containers", "0");
        Assert.Equal(("health", "8080"), (Scalar(container, "ports", "0", "name"), Scalar(container, "ports", "0", "containerPort")));
        Assert.Equal(("/healthz/live", "health"), (Scalar(container, "livenessProbe", "httpGet", "path"), Scalar(container, "livenessProbe", "httpGet", "port")));
        Assert.Equal(("/healthz/ready", "health"), (Scalar(container, "readinessProbe", "httpGet", "path"), Scalar(container, "readinessProbe", "httpGet", "port")));

        var trigger = Node(Single("scaledjob.yaml", "ScaledJob"), "spec", "triggers", "0");
        Assert.Equal("azure-queue", Scalar(trigger, "type"));
        Assert.Equal("1", Scalar(trigger, "metadata", "queueLength"));
        Assert.Equal("prefpipe-queue", Scalar(trigger, "authenticationRef", "name"));
        Assert.Equal("azure-workload", Scalar(Single("scaledjob.yaml", "TriggerAuthentication"), "spec", "podIdentity", "provider"));
    }

    [Fact]
    public void PodTemplates_UseWorkloadIdentityThePipelineConfigMapAndOptionalSecrets()
    {
        foreach (var (where, template) in PodTemplates())
        {
            var spec = Node(template, "spec");
            Assert.True(Scalar(spec, "serviceAccountName") == "prefpipe", where);
            Assert.True(Scalar(template, "metadata", "labels", "azure.workload.identity/use") == "true", where);
            Assert.True(Scalar(spec, "volumes", "0", "configMap", "name") == "prefpipe-pipeline", where);
            Assert.True(Scalar(spec, "securityContext", "runAsNonRoot") == "true", where);

            var env = ((YamlSequenceNode)Node(spec, "containers", "0", "env")).Children.Cast<YamlMappingNode>().ToList();
            foreach (string name in new[] { "PREFPIPE_JUDGE_API_KEY", "PREFPIPE_GENERATOR_API_KEY" })
            {
                var key = env.Single(e => Scalar(e, "name") == name);
                Assert.True(Scalar(key, "valueFrom", "secretKeyRef", "name") == "prefpipe-secrets", $"{where}: {name}");
                Assert.True(Scalar(key, "valueFrom", "secretKeyRef", "key") == name, $"{where}: {name}");
                Assert.True(Scalar(key, "valueFrom", "secretKeyRef", "optional") == "true", $"{where}: {name}");
            }
        }
    }

    [Fact]
    public void ServiceAccount_CarriesTheWorkloadIdentityClientId()
    {
        var account = Single("serviceaccount.yaml", "ServiceAccount");

        Assert.Equal("prefpipe", Scalar(account, "metadata", "name"));
        Assert.Matches("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", Scalar(account, "metadata", "annotations", "azure.workload.identity/client-id"));
    }

    [Fact]
    public void PipelineConfigMap_TakesStorageAndSecretsFromTheEnvironmentOnly()
    {
        var pipeline = Scalar(Documents("configmap.yaml").Single(d => Scalar(d, "metadata", "name") == "prefpipe-pipeline"), "data", "pipeline.yaml");
        var parsed = new YamlStream();
        parsed.Load(new StringReader(pipeline));
        var root = parsed.Documents[0].RootNode;

        Assert.Equal("${PREFPIPE_STORAGE}", Scalar(root, "storage"));
        Assert.DoesNotContain("key", pipeline, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("AccountKey", pipeline, StringComparison.Ordinal);
    }

    [Fact]
    public void Kustomization_ListsEveryManifestInTheFolder()
    {
        var kustomization = Single("kustomization.yaml", "Kustomization");
        var listed = ((YamlSequenceNode)Node(kustomization, "resources")).Children.Select(r => ((YamlScalarNode)r).Value!).Order().ToList();
        var files = Directory.EnumerateFiles(InfraPaths.Infra("k8s"), "*.yaml").Select(f => Path.GetFileName(f))
            .Where(f => f != "kustomization.yaml").Order().ToList();

        Assert.Equal(files, listed);
    }
}
