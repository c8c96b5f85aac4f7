using System.Diagnostics;
using System.Text.Json;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Artifacts.Tests.Storage;
using PrefPipe.Host.Pipelines;
using PrefPipe.Host.Runs;
using static PrefPipe.Host.Tests.Workers.WorkerTestPipeline;

namespace PrefPipe.Host.Tests.Workers;

/// <summary>
/// Worker processes (the built prefpipe.dll) sharing a run in Azurite: blob-lease claims, a worker killed mid-shard,
/// takeover after the lease expires, and the merged stage compared with one worker's.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class MultiWorkerAzuriteTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task Worker_ThreeProcessesOneKilledMidShard_CompleteTheStageAsOneWorkerDoes()
    {
        string root = Directory.CreateTempSubdirectory("prefpipe-workers-az-").FullName;
        var store = ArtifactStores.Open(_url, environment: name => name == ArtifactStores.ConnectionStringVariable ? azurite.ConnectionString : null);
        var pipeline = PipelineLoader.Load(Write(root, Path.Combine(root, "local"), prompts: 32));
        foreach (string id in new[] { "multi", "single" })
            await new PipelineRunner(pipeline, store, _ => { }).RunAsync(id, new RunScope(Until: PrefPipe.Host.Runs.PipelineStage.Ingest));

        // The reference: one worker claims all four shards.
        using (var single = Worker("single"))
        {
            var lines = new List<string>();
            single.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (lines) lines.Add(e.Data); };
            single.BeginOutputReadLine();
            await single.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token);
            Assert.True(single.ExitCode == 0, string.Join('\n', lines));
        }

        // Three workers; the first to claim a shard is killed at once, holding its lease.
        var events = new List<(int Pid, JsonElement Event)>();
        var workers = Enumerable.Range(0, 3).Select(_ => Worker("multi")).ToList();
        int killedPid = 0;
        string? killedShard = null;
        foreach (var worker in workers)
        {
            var w = worker;
            int pid = w.Id;
            w.OutputDataReceived += (_, e) =>
            {
                if (e.Data is null || !e.Data.StartsWith('{')) return;
                var ev = JsonDocument.Parse(e.Data).RootElement.Clone();
                lock (events)
                {
                    events.Add((pid, ev));
                    if (killedPid == 0 && ev.GetProperty("event").GetString() == "claimed")
                    {
                        killedPid = pid;
                        killedShard = ev.GetProperty("shard").GetString();
                        w.Kill(entireProcessTree: true);
                    }
                }
            };
            w.BeginOutputReadLine();
        }
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        foreach (var w in workers) await w.WaitForExitAsync(timeout.Token);

        Assert.NotEqual(0, killedPid);
        var survivors = workers.Where(w => w.Id != killedPid).ToList();
        Assert.All(survivors, w => Assert.Equal(0, w.ExitCode));
        // Another worker took the dead worker's shard over once its lease expired, and the stage was merged once.
        Assert.Contains(events, e => e.Pid != killedPid && e.Event.GetProperty("event").GetString() == "committed" && e.Event.GetProperty("shard").GetString() == killedShard);
        Assert.Equal(4, events.Count(e => e.Event.GetProperty("event").GetString() == "committed"));
        Assert.Single(events, e => e.Event.GetProperty("event").GetString() == "merged");

        foreach (string name in RankArtifacts)
            Assert.Equal(await Sha256Async(store, $"single/rank/{name}.parquet"), await Sha256Async(store, $"multi/rank/{name}.parquet"));
        await AssertSameComparisonsAsync(store, "single/rank/comparisons.parquet", store, "multi/rank/comparisons.parquet");
        var rank = (await RunRecord.LoadAsync(store, "multi", default))!.Stage(PrefPipe.Host.Runs.PipelineStage.Rank);
        Assert.Equal(StageStatus.Completed, rank.Status);
        Assert.Equal(32, rank.RowsIn);
        Assert.True(rank.Balanced);
        Assert.Equal(4, rank.Summary["shards"]);
        Assert.Equal(2, rank.Summary["workers"]);
        foreach (var w in workers) w.Dispose();
    }

    private Process Worker(string runId) => HostProcess.Start(
        ["worker", "--run", runId, "--stage", "rank", "--claim", "--shards", "4", "--storage", _url, "--lease-seconds", "15", "--json"],
        new Dictionary<string, string> { [ArtifactStores.ConnectionStringVariable] = azurite.ConnectionString });

    // A container of its own (the fixture has started Azurite before this class is built).
    private readonly string _url = $"http://127.0.0.1:{azurite.Port}/devstoreaccount1/w{Guid.NewGuid():N}";
}
