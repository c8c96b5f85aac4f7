using System.Text;
using System.Text.Json;
using Azure.Storage.Blobs;
using Microsoft.Extensions.Hosting;
using PrefPipe.Host.Pipelines;
using PrefPipe.Host.Service;
using Spectre.Console.Testing;

namespace PrefPipe.Host.Tests.Service;

/// <summary><c>prefpipe serve</c> against real Azurite (blob + queue): each prompts blob runs exactly once.</summary>
[Collection(ServeAzuriteCollection.Name)]
public sealed class ServeServiceTests(ServeAzuriteFixture azurite)
{
    private static readonly string Demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo");
    private static readonly string Slices = Path.Combine(AppContext.BaseDirectory, "fixtures", "serve");

    /// <summary>A tiny pipeline: 6 prompts × 2 candidates of 8 tokens, DPO for one step, no evaluation.</summary>
    private string Pipeline(string artifacts, string inputs, string queue, string extra = "")
    {
        string dir = Directory.CreateTempSubdirectory("prefpipe-serve-").FullName;
        string yaml = $"""
            name: svc
            storage: {azurite.BlobEndpoint}/{artifacts}/runs
            inputs:
              prompts: {Path.Combine(Slices, "prompts-a.jsonl")}
            models:
              policy: {Path.Combine(Demo, "policy")}
              reward: {Path.Combine(Demo, "reward")}
            ingest:
              candidates_per_prompt: 2
              max_new_tokens: 8
              batch_size: 8
              deduplicate: false
            split:
              rule: quantile
              quantile: 0.5
            training:
              plan: dpo
              dpo:
                max_steps: 1
                per_device_train_batch_size: 4
                max_length: 48
                max_prompt_length: 16
            triggers:
              blob:
                container: {inputs}
                prefix: incoming/
                queue: {queue}
                poll_interval: 1s
            {extra}
            """;
        string path = Path.Combine(dir, "pipeline.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    private static string BlobCreated(string container, string blob) => Convert.ToBase64String(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new
    {
        topic = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/devstoreaccount1",
        subject = $"/blobServices/default/containers/{container}/blobs/{blob}",
        eventType = "Microsoft.Storage.BlobCreated",
        id = Guid.NewGuid().ToString(),
        data = new { api = "PutBlob", eTag = "0x8DC0000000000", contentType = "application/x-ndjson", blobType = "BlockBlob" },
        dataVersion = "",
        metadataVersion = "1",
        eventTime = "2026-11-23T03:00:00Z",
    })));

    private static async Task<int> Serve(params string[] args) =>
        await PrefPipe.Host.Commands.Cli.InvokeAsync(["serve", .. args], new TestConsole());

    private static async Task<List<string>> Names(BlobContainerClient container, string prefix)
    {
        var names = new List<string>();
        if (!await container.ExistsAsync()) return names;
        await foreach (var b in container.GetBlobsAsync(new Azure.Storage.Blobs.Models.GetBlobsOptions { Prefix = prefix })) names.Add(b.Name);
        return names;
    }

    private static List<string> RunJsons(List<string> names) => names.Where(n => n.EndsWith("/run.json", StringComparison.Ordinal)).ToList();

    [Fact]
    public async Task Serve_BlobCreatedMessage_RunsOnceAcrossDuplicatesReuploadsAndRestarts()
    {
        var inputs = azurite.Container("inputs-a");
        var artifacts = azurite.Container("artifacts-a");
        var queue = azurite.Queue("blob-created-a");
        await inputs.CreateIfNotExistsAsync();
        await queue.CreateIfNotExistsAsync();
        string config = Pipeline("artifacts-a", "inputs-a", "blob-created-a");
        await inputs.GetBlobClient("incoming/batch1.jsonl").UploadAsync(Path.Combine(Slices, "prompts-a.jsonl"), overwrite: true);
        await queue.SendMessageAsync(BlobCreated("inputs-a", "incoming/batch1.jsonl"));

        // 1. The event starts one run of the pipeline on that blob; its artifacts and trained model land in the container.
        Assert.Equal(0, await Serve("--config", config, "--once"));
        var names = await Names(artifacts, "runs/");
        var runs = RunJsons(names);
        string runJson = Assert.Single(runs);
        string runId = runJson.Split('/')[1];
        Assert.StartsWith("svc-blob-", runId, StringComparison.Ordinal);
        Assert.Contains($"runs/{runId}/ingest/candidates.parquet", names);
        Assert.Contains($"runs/{runId}/rank/preferences.parquet", names);
        Assert.Contains(names, n => n.StartsWith($"runs/{runId}/dpo/model/checkpoint-", StringComparison.Ordinal) && n.EndsWith("model.safetensors", StringComparison.Ordinal));
        Assert.Single(names, n => n.StartsWith("runs/_service/blob/", StringComparison.Ordinal));
        using (var doc = JsonDocument.Parse((await artifacts.GetBlobClient(runJson).DownloadContentAsync()).Value.Content.ToString()))
        {
            Assert.Equal("completed", doc.RootElement.GetProperty("status").GetString());
            var ingest = doc.RootElement.GetProperty("stages")[0];
            Assert.Equal(6, ingest.GetProperty("rows_in").GetInt64());
            Assert.Equal(12, ingest.GetProperty("summary").GetProperty("candidates").GetDouble());
        }
        Assert.Empty((await queue.ReceiveMessagesAsync(1)).Value);

        // 2. The same content uploaded again plus a duplicate event: nothing new, and the message is consumed.
        await inputs.GetBlobClient("incoming/batch1.jsonl").UploadAsync(Path.Combine(Slices, "prompts-a.jsonl"), overwrite: true);
        await queue.SendMessageAsync(BlobCreated("inputs-a", "incoming/batch1.jsonl"));
        Assert.Equal(0, await Serve("--config", config, "--once"));
        Assert.Single(RunJsons(await Names(artifacts, "runs/")));
        Assert.Empty((await queue.ReceiveMessagesAsync(1)).Value);

        // 3. A restarted long-running service polls the prefix and still starts nothing.
        var settings = new ServeSettings(PipelineLoader.Load(config), [], Once: false, JsonLogs: false);
        using (var host = ServeHost.Build(settings))
        {
            await host.StartAsync();
            await Task.Delay(TimeSpan.FromSeconds(3));
            await host.StopAsync();
        }
        Assert.Single(RunJsons(await Names(artifacts, "runs/")));
    }

    [Fact]
    public async Task Serve_NewBlobWhilePolling_StartsOneRunFromTheBlob()
    {
        var inputs = azurite.Container("inputs-b");
        var artifacts = azurite.Container("artifacts-b");
        await inputs.CreateIfNotExistsAsync();
        await azurite.Queue("blob-created-b").CreateIfNotExistsAsync();
        string config = Pipeline("artifacts-b", "inputs-b", "blob-created-b", "  max_concurrent_runs: 2");
        var settings = new ServeSettings(PipelineLoader.Load(config, ["training.plan=none"]), ["training.plan=none"], Once: false, JsonLogs: true);
        using var host = ServeHost.Build(settings);
        await host.StartAsync();
        await inputs.GetBlobClient("incoming/batch2.jsonl").UploadAsync(Path.Combine(Slices, "prompts-b.jsonl"), overwrite: true);

        string? status = null;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (status != "completed" && DateTime.UtcNow < deadline)
        {
            await Task.Delay(500);
            if (RunJsons(await Names(artifacts, "runs/")).FirstOrDefault() is { } runJson)
            {
                using var doc = JsonDocument.Parse((await artifacts.GetBlobClient(runJson).DownloadContentAsync()).Value.Content.ToString());
                status = doc.RootElement.GetProperty("status").GetString();
            }
        }
        await Task.Delay(1500); // two more polls: the same blob must not start again
        await host.StopAsync();

        Assert.Equal("completed", status);
        var runs = RunJsons(await Names(artifacts, "runs/"));
        Assert.Single(runs);
        var pipelineYaml = (await artifacts.GetBlobClient(runs[0].Replace("run.json", "pipeline.yaml", StringComparison.Ordinal)).DownloadContentAsync()).Value.Content.ToString();
        Assert.Contains("inputs-b/incoming/batch2.jsonl", pipelineYaml, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ScheduleTrigger_TwoInstances_ClaimEachOccurrenceOnce()
    {
        string config = Pipeline("artifacts-c", "inputs-c", "blob-created-c", "  schedule: \"*/10 * * * * *\"\n  time_zone: Europe/Berlin");
        var pipeline = PipelineLoader.Load(config);
        var settings = new ServeSettings(pipeline, [], Once: false, JsonLogs: false);
        var start = new DateTime(2026, 3, 29, 0, 59, 30, DateTimeKind.Utc); // across Berlin's switch to summer time
        var instances = Enumerable.Range(0, 2).Select(_ => new
        {
            Schedule = new ScheduleTrigger(pipeline.Definition.Triggers, pipeline.Definition.Name),
            Launcher = new RunLauncher(settings, PrefPipe.Host.Commands.RunCommands.OpenStore(pipeline.Resolve(pipeline.Definition.Storage)),
                Microsoft.Extensions.Logging.Abstractions.NullLogger<RunLauncher>.Instance),
        }).ToList();

        var occurrences = new List<DateTime>();
        for (DateTime? t = instances[0].Schedule.Next(start); t is { } o && occurrences.Count < 6; t = instances[0].Schedule.Next(o)) occurrences.Add(o);
        var claims = occurrences.SelectMany(o => instances.Select(i => (Occurrence: o, Claim: i.Schedule.ClaimFor(o), i.Launcher))).ToList();
        var won = await Task.WhenAll(claims.Select(c => c.Launcher.TryClaimAsync(c.Claim)));

        Assert.Equal(new DateTime(2026, 3, 29, 0, 59, 40, DateTimeKind.Utc), occurrences[0]);
        Assert.All(occurrences.Zip(occurrences.Skip(1)), p => Assert.Equal(TimeSpan.FromSeconds(10), p.Second - p.First));
        for (int i = 0; i < occurrences.Count; i++)
        {
            Assert.Equal(claims[2 * i].Claim.RunId, claims[2 * i + 1].Claim.RunId);
            Assert.Equal(1, (won[2 * i] ? 1 : 0) + (won[2 * i + 1] ? 1 : 0));
        }
        Assert.Equal("svc-sched-20260329-005940", claims[0].Claim.RunId);
        // A restarted instance sees the claims and starts nothing.
        Assert.False(await instances[1].Launcher.TryClaimAsync(instances[1].Schedule.ClaimFor(occurrences[0])));
        foreach (var i in instances) i.Launcher.Dispose();
    }

    [Fact]
    public async Task Serve_InvalidConfig_ExitsTwoNamingTheKey()
    {
        string config = Pipeline("artifacts-d", "inputs-d", "blob-created-d");
        await using var error = await StderrCapture.StartAsync();
        Assert.Equal(2, await Serve("--config", config, "--once", "--set", "triggers.max_concurrent_runs=0"));
        Assert.Equal(2, await Serve("--config", config, "--once", "--set", "triggers.schedule=every day"));
        Assert.Contains("triggers.max_concurrent_runs (value 0)", error.ToString(), StringComparison.Ordinal);
        Assert.Contains("triggers.schedule ('every day')", error.ToString(), StringComparison.Ordinal);
        Assert.False(await azurite.Container("artifacts-d").ExistsAsync());
    }

    [Fact]
    public async Task Serve_StoppedMidRun_RecordsCancelledAndTheNextStartResumesIt()
    {
        var artifacts = azurite.Container("artifacts-e");
        string folder = Directory.CreateTempSubdirectory("prefpipe-serve-inbox-").FullName;
        string config = Pipeline("artifacts-e", "inputs-e", "unused", "");
        string[] overrides = ["training.plan=none", "ingest.batch_size=1", "ingest.max_new_tokens=32", "triggers.blob.container=", $"triggers.blob.location={folder}", "triggers.blob.queue="];
        var settings = new ServeSettings(PipelineLoader.Load(config, overrides), overrides, Once: false, JsonLogs: false);
        File.Copy(Path.Combine(Slices, "prompts-b.jsonl"), Path.Combine(folder, "batch.jsonl"));

        async Task<string?> StatusAsync()
        {
            if (RunJsons(await Names(artifacts, "runs/")).FirstOrDefault() is not { } runJson) return null;
            using var doc = JsonDocument.Parse((await artifacts.GetBlobClient(runJson).DownloadContentAsync()).Value.Content.ToString());
            return doc.RootElement.GetProperty("status").GetString();
        }
        async Task<string?> WaitForAsync(Func<string?, bool> done)
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            string? status;
            while (!done(status = await StatusAsync()) && DateTime.UtcNow < deadline) await Task.Delay(200);
            return status;
        }

        using (var first = ServeHost.Build(settings))
        {
            await first.StartAsync();
            Assert.Equal("running", await WaitForAsync(s => s == "running"));
            await first.StopAsync();
        }
        Assert.Equal("cancelled", await StatusAsync());

        using (var second = ServeHost.Build(settings))
        {
            await second.StartAsync();
            Assert.Equal("completed", await WaitForAsync(s => s == "completed"));
            await second.StopAsync();
        }
        Assert.Single(RunJsons(await Names(artifacts, "runs/")));
    }

    [Fact]
    public async Task ServeOnce_TriggerSchedule_RunsTheDueOccurrenceOnce()
    {
        var artifacts = azurite.Container("artifacts-f");
        string config = Pipeline("artifacts-f", "inputs-f", "blob-created-f", "  schedule: \"0 0 * * *\"");
        string[] args = ["--config", config, "--once", "--trigger", "schedule", "--set", "training.plan=none"];
        string due = DateTime.UtcNow.ToString("yyyyMMdd", System.Globalization.CultureInfo.InvariantCulture);

        Assert.Equal(0, await Serve(args));
        Assert.Equal(0, await Serve(args));

        string run = Assert.Single(RunJsons(await Names(artifacts, "runs/")));
        Assert.Equal($"runs/svc-sched-{due}-000000/run.json", run);
        Assert.Single(await Names(artifacts, "runs/_service/schedule/"));
    }

    [Fact]
    public async Task ServeOnce_MessageForARunAnotherHostIsWriting_LeavesTheMessageAndExitsZero()
    {
        var inputs = azurite.Container("inputs-g");
        var artifacts = azurite.Container("artifacts-g");
        var queue = azurite.Queue("blob-created-g");
        await inputs.CreateIfNotExistsAsync();
        await queue.CreateIfNotExistsAsync();
        string config = Pipeline("artifacts-g", "inputs-g", "blob-created-g");
        await inputs.GetBlobClient("incoming/held.jsonl").UploadAsync(Path.Combine(Slices, "prompts-a.jsonl"), overwrite: true);

        // Another host claimed the blob and is writing its run: its claim marker and live run lock are in the store.
        var pipeline = PipelineLoader.Load(config);
        var settings = new ServeSettings(pipeline, [], Once: true, JsonLogs: false);
        var claim = await BlobTriggerSource.Open(pipeline.Definition.Triggers.Blob!, pipeline).ClaimForAsync("held.jsonl", "svc");
        var store = PrefPipe.Host.Commands.RunCommands.OpenStore(pipeline.Resolve(pipeline.Definition.Storage));
        using (var other = new RunLauncher(settings, store, Microsoft.Extensions.Logging.Abstractions.NullLogger<RunLauncher>.Instance))
            Assert.True(await other.TryClaimAsync(claim));
        string lockJson = $$"""{"owner":"o","host":"other-host","pid":4242,"since":"{{DateTimeOffset.UtcNow.AddMinutes(-1):O}}"}""";
        Assert.True(await store.TryCreateAsync(PrefPipe.Host.Runs.RunLock.PathOf(claim.RunId), Encoding.UTF8.GetBytes(lockJson)));
        await Azure.Storage.Blobs.Specialized.SpecializedBlobExtensions.GetBlobLeaseClient(artifacts.GetBlobClient($"runs/{PrefPipe.Host.Runs.RunLock.PathOf(claim.RunId)}"))
            .AcquireAsync(TimeSpan.FromSeconds(60)); // the run lock on blobs is a lease its holder renews
        await queue.SendMessageAsync(BlobCreated("inputs-g", "incoming/held.jsonl"));

        // Nothing for this consumer to do: exit 0, the run is neither started nor marked failed, its lock stays.
        Assert.Equal(0, await Serve("--config", config, "--once"));
        Assert.Empty(RunJsons(await Names(artifacts, "runs/")));
        Assert.True(await store.ExistsAsync(PrefPipe.Host.Runs.RunLock.PathOf(claim.RunId)));

        // The message is not deleted: it is invisible now and comes back after the holder's lock could have expired.
        Assert.Empty((await queue.ReceiveMessagesAsync(1)).Value);
        Assert.Equal(1, (await queue.GetPropertiesAsync()).Value.ApproximateMessagesCount);
    }

    [Fact]
    public async Task QueueLease_WorkOutlastingSeveralLeases_KeepsTheMessageInvisibleAndReturnsACurrentReceipt()
    {
        var queue = azurite.Queue("lease-h");
        await queue.CreateIfNotExistsAsync();
        await queue.SendMessageAsync("work");
        // Leases of 4 s renewed every 2 s: a renewal may come up to 2 s late (a loaded 2-core machine) and still be in time.
        // With 2 s leases (1 s of slack) the message became visible once in a full-suite run.
        var source = new QueueSource(queue) { LeaseTime = TimeSpan.FromSeconds(4) };
        var message = await source.ReceiveAsync();
        Assert.NotNull(message);

        var (seenByOthers, receipt) = await source.WithLeaseAsync(message, async () =>
        {
            await Task.Delay(TimeSpan.FromSeconds(10)); // 2.5 leases: only renewals keep it invisible
            return (await queue.ReceiveMessagesAsync(1)).Value.Length;
        });

        Assert.Equal(0, seenByOthers);
        await source.DeleteAsync(message, receipt); // fails with 404 if the receipt were not the latest
        Assert.Equal(0, (await queue.GetPropertiesAsync()).Value.ApproximateMessagesCount);
    }
}
