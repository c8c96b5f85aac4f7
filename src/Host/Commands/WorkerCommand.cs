using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using PrefPipe.Artifacts.Sharding;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Pipelines;
using PrefPipe.Host.Runs;
using PrefPipe.Host.Workers;
using Spectre.Console;

namespace PrefPipe.Host.Commands;

/// <summary>
/// <c>prefpipe worker --run ID --stage ingest|rank [--shard i/N | --claim [--shards N]] [--storage URI]</c>: one of many
/// workers running a stage of an existing run as shards (see <see cref="ShardWorker"/>).
/// </summary>
internal static class WorkerCommand
{
    /// <summary>N for --claim without --shards: enough for a few workers to balance stragglers.</summary>
    public const int DefaultShards = 16;

    public static Command Create(IAnsiConsole? console)
    {
        var runId = new Option<string>("--run") { Description = "Run id; the run must exist (its pipeline.yaml and run.json are in the store).", Required = true };
        var stage = new Option<string>("--stage") { Description = "Stage to run as shards: ingest (generation) or rank.", Required = true };
        var shard = new Option<string?>("--shard") { Description = "Process this one shard, i/N (e.g. a Kubernetes Indexed Job: $(JOB_COMPLETION_INDEX)/N)." };
        var claim = new Option<bool>("--claim") { Description = "Claim free shards one after another until none is left." };
        var shards = new Option<int?>("--shards") { Description = $"Number of shards N with --claim (default {DefaultShards}; every worker of a stage must use the same N); with --shard it must match i/N." };
        var storage = new Option<string?>("--storage") { Description = "Artifact store holding the run: folder, az://CONTAINER/PREFIX or container URL (default $PREFPIPE_STORAGE, else ./runs)." };
        var lease = new Option<int>("--lease-seconds") { Description = "Claim duration without renewal; a dead worker's shard is taken over after it (Azure Blob: 15 to 60).", DefaultValueFactory = _ => 30 };
        var pipelineFile = new Option<string?>("--pipeline") { Description = "Pipeline file: creates the run (pipeline.yaml, run.json) when it does not exist yet, e.g. to shard ingest from the start." };
        var json = new Option<bool>("--json") { Description = "One JSON object per line: claimed, committed, lost, waiting, merging, merged, complete." };
        var command = new Command("worker", "Run the ingest or rank stage of an existing run as shards across many workers; the last worker merges them.")
        {
            runId, stage, shard, claim, shards, storage, lease, pipelineFile, json,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var output = console ?? AnsiConsole.Console;
            WorkerPlan plan;
            IArtifactStore store;
            LoadedPipeline pipeline;
            string id = parse.GetValue(runId)!;
            try
            {
                plan = Plan(parse.GetValue(stage)!, parse.GetValue(shard), parse.GetValue(claim), parse.GetValue(shards), parse.GetValue(lease));
                ArtifactPath.ValidateName(id, "run id");
                var fromFile = parse.GetValue(pipelineFile) is { } file ? PipelineLoader.Load(file) : null;
                string location = parse.GetValue(storage) ?? Environment.GetEnvironmentVariable("PREFPIPE_STORAGE")
                    ?? (fromFile is null ? "./runs" : fromFile.Resolve(fromFile.Definition.Storage));
                store = ArtifactStores.Open(location);
                if (fromFile is not null) await ShardWorker.CreateRunAsync(fromFile, store, id, cancellationToken).ConfigureAwait(false);
                if (ArtifactStores.IsBlobLocation(location) && plan.Lease is var l && (l < TimeSpan.FromSeconds(15) || l > TimeSpan.FromSeconds(60)))
                    throw new ArgumentException($"--lease-seconds {l.TotalSeconds:F0}: blob leases last 15 to 60 seconds");
                pipeline = await RunCommands.LoadRunPipelineAsync(store, id,
                    $"start it with 'prefpipe run PIPELINE --run-id {id} --until ingest', pass --pipeline FILE, or pass --storage", cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (CliErrors.IsExpected(ex))
            {
                return CliErrors.Report("worker", ex);
            }

            bool asJson = parse.GetValue(json);
            void Report(WorkerEvent e)
            {
                var writer = output.Profile.Out.Writer;
                if (asJson) writer.WriteLine(JsonSerializer.Serialize(e));
                else writer.WriteLine(string.Join(' ', new[] { e.Event, e.Stage.Name(), e.Shard, e.Rows?.ToString(CultureInfo.InvariantCulture), e.Seconds is { } s ? $"{s:F1}s" : null, e.Detail }.Where(x => x is not null)));
                writer.Flush();
            }
            var worker = new ShardWorker(pipeline, store, id, Report);
            try
            {
                await worker.RunAsync(plan, cancellationToken).ConfigureAwait(false);
                return Cli.ExitCodes.Ok;
            }
            catch (OperationCanceledException)
            {
                Console.Error.WriteLine("prefpipe worker: cancelled; claimed shards are released (or expire) and other workers take them over");
                return Cli.ExitCodes.Failed;
            }
            catch (Exception ex)
            {
                // The event stream (JSON lines in a job's log) ends with the failure too, not only stderr.
                Report(new WorkerEvent("failed", plan.Stage, Detail: CliErrors.MessageOf(ex)));
                return CliErrors.Report("worker", ex);
            }
        });
        return command;
    }

    /// <summary>Validates the options into a plan; the message names the option and what was expected.</summary>
    internal static WorkerPlan Plan(string stageName, string? shard, bool claim, int? shards, int leaseSeconds)
    {
        if (!RunVocabulary.TryParseStage(stageName, out var stage) || stage is not (PipelineStage.Ingest or PipelineStage.Rank))
            throw new ArgumentException($"--stage '{stageName}' cannot be sharded; expected ingest or rank");
        if (leaseSeconds < 1) throw new ArgumentException($"--lease-seconds must be 1 or more, got {leaseSeconds}");
        var lease = TimeSpan.FromSeconds(leaseSeconds);
        var poll = TimeSpan.FromSeconds(Math.Clamp(leaseSeconds / 6.0, 0.5, 5));
        if (shard is not null && claim) throw new ArgumentException("use either --shard i/N or --claim, not both");
        if (shard is not null)
        {
            var s = Shard.Parse(shard);
            if (shards is { } n && n != s.Count) throw new ArgumentException($"--shard {shard} has N = {s.Count} but --shards is {n}");
            return new WorkerPlan(stage, s.Count, s, lease, poll);
        }
        if (!claim) throw new ArgumentException("give --shard i/N (one shard) or --claim [--shards N] (claim free shards until none is left)");
        int count = shards ?? DefaultShards;
        if (count < 1 || count > Shard.MaxCount)
            throw new ArgumentException($"--claim needs --shards N with 1 <= N <= {Shard.MaxCount}");
        return new WorkerPlan(stage, count, null, lease, poll);
    }
}
