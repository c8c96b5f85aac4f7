using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace PrefPipe.Infra.Tests.Azure;

/// <summary>Builds infra/azure/main.bicep once for the class: the build result and the compiled ARM template.</summary>
public sealed class BicepBuild : IAsyncLifetime
{
    private readonly string _temp = Directory.CreateTempSubdirectory("prefpipe-bicep-build-").FullName;

    public ProcessResult Result { get; private set; } = new(-1, "", "");

    public string TemplateText { get; private set; } = "";

    public async Task InitializeAsync()
    {
        var output = Path.Combine(_temp, "main.json");
        Result = await BicepTemplateTests.BicepAsync(InfraPaths.Infra("azure"), "build", "main.bicep", "--outfile", output);
        TemplateText = File.Exists(output) ? await File.ReadAllTextAsync(output) : "";
    }

    public Task DisposeAsync()
    {
        Directory.Delete(_temp, recursive: true);
        return Task.CompletedTask;
    }
}

/// <summary>infra/azure compiles with the Bicep CLI, its linter rules as errors and every warning treated as an error.</summary>
public sealed partial class BicepTemplateTests(BicepBuild build) : IClassFixture<BicepBuild>, IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("prefpipe-bicep-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    internal static async Task<ProcessResult> BicepAsync(string workingDirectory, params string[] arguments) =>
        await ChildProcess.RunAsync(InfraPaths.Bicep(), arguments, workingDirectory);

    /// <summary>Exit 0 and not one diagnostic: a warning fails the check like an error does.</summary>
    private static void AssertClean(ProcessResult result)
    {
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.DoesNotContain(": Warning ", result.Output, StringComparison.Ordinal);
        Assert.DoesNotContain(": Error ", result.Output, StringComparison.Ordinal);
    }

    private Task<JsonObject> BuildMainAsync()
    {
        AssertClean(build.Result);
        return Task.FromResult(JsonNode.Parse(build.TemplateText)!.AsObject());
    }

    /// <summary>The five job modules of the compiled template, by job name suffix.</summary>
    private static Dictionary<string, JsonObject> JobParameters(JsonObject template) =>
        template["resources"]!.AsArray()
            .Select(r => r!.AsObject())
            .Where(r => (string?)r["type"] == "Microsoft.Resources/deployments")
            .Select(r => r["properties"]!["parameters"]!.AsObject())
            .ToDictionary(p => JobSuffix().Match((string)p["name"]!["value"]!).Groups[1].Value, p => p);

    /// <summary>The job name's suffix in "[format('{0}-scheduled', parameters('namePrefix'))]".</summary>
    [GeneratedRegex(@"^\[format\('\{0\}-([a-z]+)'")]
    private static partial Regex JobSuffix();

    private static string[] Args(JsonObject parameters) =>
        parameters["args"]!["value"]!.AsArray().Select(a => (string)a!).ToArray();

    [Fact]
    public async Task Build_MainTemplate_CompilesWithoutDiagnostics()
    {
        var template = await BuildMainAsync();

        Assert.Equal("https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#", (string?)template["$schema"]);
        Assert.Equal(5, JobParameters(template).Count);
    }

    [Fact]
    public async Task Lint_MainTemplateAndModules_ReportNothing()
    {
        AssertClean(await BicepAsync(InfraPaths.Infra("azure"), "lint", "main.bicep"));
        AssertClean(await BicepAsync(InfraPaths.Infra("azure"), "lint", Path.Combine("modules", "job.bicep")));
    }

    [Fact]
    public async Task Build_MainTemplate_EveryParameterAndOutputIsDocumented()
    {
        var template = await BuildMainAsync();

        foreach (var section in new[] { "parameters", "outputs" })
        {
            foreach (var (name, value) in template[section]!.AsObject())
            {
                var description = (string?)value!["metadata"]?["description"];
                Assert.False(string.IsNullOrWhiteSpace(description), $"{section}.{name} has no @description");
            }
        }
    }

    [Fact]
    public async Task Build_MainTemplate_JobsRunTheProductCommands()
    {
        var jobs = JobParameters(await BuildMainAsync());

        Assert.Equal(["run", "/config/pipeline.yaml"], Args(jobs["scheduled"]));
        Assert.Equal("Schedule", (string?)jobs["scheduled"]["triggerType"]!["value"]);

        Assert.Equal(["serve", "--config", "/config/pipeline.yaml", "--once", "--health-port", "[string(parameters('healthPort'))]"], Args(jobs["blob"]));
        // Probes on serve's health endpoints, on the port it is told to listen on.
        var probes = jobs["blob"]["probes"]!["value"]!.AsArray();
        Assert.Equal([("Liveness", "/healthz/live", "[parameters('healthPort')]"), ("Readiness", "/healthz/ready", "[parameters('healthPort')]")],
            probes.Select(p => ((string?)p!["type"], (string?)p["httpGet"]!["path"], (string?)p["httpGet"]!["port"])));
        Assert.Equal("Event", (string?)jobs["blob"]["triggerType"]!["value"]);
        var rule = jobs["blob"]["scaleRules"]!["value"]![0]!;
        Assert.Equal("azure-queue", (string?)rule["type"]);
        // One execution per queued message, authenticated with the managed identity (no connection string).
        Assert.Equal("1", (string?)rule["metadata"]!["queueLength"]);
        Assert.NotNull(rule["identity"]);
        Assert.Null(rule["auth"]);

        foreach (var manual in new[] { "manual", "workers", "trainer" })
            Assert.Equal("Manual", (string?)jobs[manual]["triggerType"]!["value"]);

        // Shard workers: N replicas per execution, all of which must finish.
        Assert.Equal("[parameters('shardWorkers')]", (string?)jobs["workers"]["parallelism"]!["value"]);
        Assert.Equal("[parameters('shardWorkers')]", (string?)jobs["workers"]["replicaCompletionCount"]!["value"]);

        // Only the trainer runs on the GPU profile, from the CUDA image.
        Assert.Equal("[variables('gpuProfileName')]", (string?)jobs["trainer"]["workloadProfileName"]!["value"]);
        Assert.Contains("gpuImage", (string?)jobs["trainer"]["image"]!["value"], StringComparison.Ordinal);
        foreach (var cpu in new[] { "scheduled", "blob", "manual", "workers" })
            Assert.Equal("Consumption", (string?)jobs[cpu]["workloadProfileName"]!["value"]);
    }

    [Fact]
    public async Task Build_MainTemplate_StorageAllowsNoSharedKeyAndEventsGoToTheQueue()
    {
        var resources = (await BuildMainAsync())["resources"]!.AsArray().Select(r => r!.AsObject()).ToList();

        var storage = resources.Single(r => (string?)r["type"] == "Microsoft.Storage/storageAccounts");
        Assert.False((bool)storage["properties"]!["allowSharedKeyAccess"]!);
        Assert.False((bool)storage["properties"]!["allowBlobPublicAccess"]!);

        var subscription = resources.Single(r => (string?)r["type"] == "Microsoft.EventGrid/systemTopics/eventSubscriptions");
        var properties = subscription["properties"]!;
        Assert.Equal(["Microsoft.Storage.BlobCreated"], properties["filter"]!["includedEventTypes"]!.AsArray().Select(t => (string)t!));
        Assert.Equal("StorageQueue", (string?)properties["deliveryWithResourceIdentity"]!["destination"]!["endpointType"]);
        Assert.Equal("SystemAssigned", (string?)properties["deliveryWithResourceIdentity"]!["identity"]!["type"]);

        var roles = resources.Where(r => (string?)r["type"] == "Microsoft.Authorization/roleAssignments")
            .Select(r => (string)r["properties"]!["roleDefinitionId"]!).ToList();
        foreach (var role in new[] { "storageBlobDataContributor", "storageQueueDataContributor", "storageQueueDataMessageSender", "acrPull", "keyVaultSecretsUser" })
            Assert.Contains(roles, id => id.Contains($"variables('roles').{role}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Build_PipelineSecretVolume_CarriesTheKubernetesPipelineFile()
    {
        // The Container Apps jobs mount the same pipeline file as the Kubernetes ConfigMap: no second copy to drift.
        var template = await BuildMainAsync();

        Assert.Equal("[variables('$fxv#0').data['pipeline.yaml']]", (string?)template["variables"]!["pipelineYaml"]);
        var loaded = (string?)template["variables"]!["$fxv#0"]!["data"]!["pipeline.yaml"];
        Assert.NotNull(loaded);
        Assert.Contains("storage: ${PREFPIPE_STORAGE}", loaded, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Build_TemplateWithUnusedParameter_FailsTheCheck()
    {
        // The check can fail: a copy of the templates with a linter finding does not pass AssertClean.
        var azure = CopyInfraTo(_temp);
        await File.AppendAllTextAsync(Path.Combine(azure, "main.bicep"), "\n@description('Never used.')\nparam unused string = 'x'\n");

        var result = await BicepAsync(azure, "build", "main.bicep", "--stdout");

        Assert.Contains("no-unused-params", result.Output, StringComparison.Ordinal);
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => AssertClean(result));
    }

    [Fact]
    public async Task Build_TemplateWithUnknownResourceProperty_FailsTheCheck()
    {
        // Resource bodies are checked against Azure's types offline: a misspelt property is a warning (BCP089,
        // "did you mean"), which the check treats as an error.
        var azure = CopyInfraTo(_temp);
        var main = Path.Combine(azure, "main.bicep");
        var text = await File.ReadAllTextAsync(main);
        await File.WriteAllTextAsync(main, text.Replace("allowSharedKeyAccess: false", "allowSharedKeyAcess: false", StringComparison.Ordinal));

        var result = await BicepAsync(azure, "build", "main.bicep", "--stdout");

        Assert.Contains("Warning BCP089: The property \"allowSharedKeyAcess\" is not allowed", result.Output, StringComparison.Ordinal);
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => AssertClean(result));
    }

    /// <summary>Copies infra/azure and the pipeline ConfigMap it loads into folder/azure and folder/k8s.</summary>
    private static string CopyInfraTo(string folder)
    {
        var source = InfraPaths.Infra("azure");
        var azure = Path.Combine(folder, "azure");
        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(azure, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        Directory.CreateDirectory(Path.Combine(folder, "k8s"));
        File.Copy(InfraPaths.Infra("k8s", "configmap.yaml"), Path.Combine(folder, "k8s", "configmap.yaml"));
        return azure;
    }
}
