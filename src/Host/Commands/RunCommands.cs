using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Pipelines;
using PrefPipe.Host.Runs;
using Spectre.Console;

namespace PrefPipe.Host.Commands;

/// <summary><c>prefpipe run | resume | rerun | status | runs</c>.</summary>
internal static class RunCommands
{
    private static readonly JsonSerializerOptions IndentedJson = new() { WriteIndented = true };

    public static IEnumerable<Command> Create(IAnsiConsole? console)
    {
        yield return Run(console);
        yield return Resume(console);
        yield return Rerun(console);
        yield return Status(console);
        yield return Runs(console);
        yield return Report(console);
    }

    private static Option<string?> StorageOption() => new("--storage") { Description = "Artifact store (default: the pipeline's storage, else ./runs)." };

    private static Command Run(IAnsiConsole? console)
    {
        var file = new Argument<string>("pipeline") { Description = "Pipeline file, e.g. pipelines/demo.yaml." };
        var runId = new Option<string?>("--run-id") { Description = "Run id (default: NAME-yyyyMMdd-HHmmss-xxxx)." };
        var set = new Option<string[]>("--set") { Description = "Override a value: key.path=value (repeatable).", Arity = ArgumentArity.ZeroOrMore };
        var from = new Option<string?>("--from") { Description = $"First stage to run ({RunVocabulary.AllStageNames})." };
        var until = new Option<string?>("--until") { Description = "Last stage to run." };
        var storage = new Option<string?>("--storage") { Description = "Artifact store for the run, instead of the pipeline's storage: folder, az://CONTAINER/PREFIX or container URL (same as --set storage=...; a relative folder is relative to the current directory)." };
        var command = new Command("run", "Run a pipeline: ingest → rank → split → dpo → ppo → evaluate (the plan decides which training stages run).") { file, runId, set, from, until, storage };
        command.SetAction((parse, ct) => Execute(console, async output =>
        {
            var overrides = (parse.GetValue(set) ?? []).ToList();
            // The pipeline's own storage key, so run.json's saved pipeline and the runner's work folder agree with the store.
            if (parse.GetValue(storage) is { } location)
                overrides.Add($"storage={(ArtifactStores.IsBlobLocation(location) ? location : Path.GetFullPath(location))}");
            var pipeline = PipelineLoader.Load(parse.GetValue(file)!, overrides);
            var scope = new RunScope(Stage(parse.GetValue(from)), Stage(parse.GetValue(until)));
            PipelineRunner.CheckScope(scope);
            string id = parse.GetValue(runId) ?? PipelineRunner.NewRunId(pipeline.Definition.Name);
            return await RunAsync("run", output, pipeline, id, scope, ct).ConfigureAwait(false);
        }));
        return command;
    }

    private static Command Resume(IAnsiConsole? console)
    {
        var runId = new Option<string>("--run") { Description = "Run id.", Required = true };
        var storage = StorageOption();
        var command = new Command("resume", "Continue a crashed or cancelled run: completed stages are kept, the rest run (ingest and training resume mid-stage).") { runId, storage };
        command.SetAction((parse, ct) => Execute(console, async output =>
        {
            var (pipeline, store) = await LoadRunPipelineAsync(parse.GetValue(storage), parse.GetValue(runId)!, ct).ConfigureAwait(false);
            return await RunAsync("resume", output, pipeline, parse.GetValue(runId)!, new RunScope(), ct, store).ConfigureAwait(false);
        }));
        return command;
    }

    private static Command Rerun(IAnsiConsole? console)
    {
        var runId = new Option<string>("--run") { Description = "Run id.", Required = true };
        var stage = new Option<string>("--stage") { Description = $"Stage to rerun ({RunVocabulary.AllStageNames}).", Required = true };
        var downstream = new Option<bool>("--downstream") { Description = "Also rerun the stages after it." };
        var storage = StorageOption();
        var command = new Command("rerun", "Rerun one stage of a run (and, on request, those after it), reusing the artifacts upstream.") { runId, stage, downstream, storage };
        command.SetAction((parse, ct) => Execute(console, async output =>
        {
            var s = RunVocabulary.ParseStage(parse.GetValue(stage)!);
            var (pipeline, store) = await LoadRunPipelineAsync(parse.GetValue(storage), parse.GetValue(runId)!, ct).ConfigureAwait(false);
            var force = Stages.All.Where(x => x >= s).Take(parse.GetValue(downstream) ? int.MaxValue : 1).ToHashSet();
            return await RunAsync("rerun", output, pipeline, parse.GetValue(runId)!, new RunScope(s, parse.GetValue(downstream) ? null : s, force), ct, store).ConfigureAwait(false);
        }));
        return command;
    }

    private static Command Status(IAnsiConsole? console)
    {
        var runId = new Option<string?>("--run") { Description = "Run id (default: the newest run)." };
        var storage = StorageOption();
        var json = new Option<bool>("--json") { Description = "Print run.json plus the evaluation's win_rate, mean_reward_start, mean_reward_final." };
        var command = new Command("status", "Stages, durations and row counts of a run.") { runId, storage, json };
        command.SetAction((parse, ct) => Execute(console, async output =>
        {
            var store = OpenStore(parse.GetValue(storage));
            string? id = parse.GetValue(runId) ?? (await ListRunsAsync(store, ct).ConfigureAwait(false)).LastOrDefault();
            var run = id is null ? null : await RunRecord.LoadAsync(store, id, ct).ConfigureAwait(false);
            if (run is null) throw new ArgumentException(id is null ? $"no runs in {store.Location}" : $"run '{id}' not found in {store.Location}");
            if (parse.GetValue(json))
            {
                var eval = run.Stage(PipelineStage.Evaluate).Summary;
                var doc = new Dictionary<string, object?>
                {
                    ["run"] = run,
                    ["win_rate"] = eval.TryGetValue("win_rate", out var w) ? w : null,
                    ["mean_reward_start"] = eval.TryGetValue("mean_reward_start", out var s) ? s : null,
                    ["mean_reward_final"] = eval.TryGetValue("mean_reward_final", out var f) ? f : null,
                };
                output.Profile.Out.Writer.WriteLine(JsonSerializer.Serialize(doc, IndentedJson));
                output.Profile.Out.Writer.Flush();
            }
            else
            {
                Summary(output, run);
            }
            return Cli.ExitCodes.Ok;
        }));
        return command;
    }

    private static Command Runs(IAnsiConsole? console)
    {
        var storage = StorageOption();
        var command = new Command("runs", "List runs in the store.") { storage };
        command.SetAction((parse, ct) => Execute(console, async output =>
        {
            var store = OpenStore(parse.GetValue(storage));
            var table = new Table().AddColumn("run").AddColumn("pipeline").AddColumn("status").AddColumn("created");
            foreach (string id in await ListRunsAsync(store, ct).ConfigureAwait(false))
                if (await RunRecord.LoadAsync(store, id, ct).ConfigureAwait(false) is { } r)
                    table.AddRow(Markup.Escape(r.RunId), Markup.Escape(r.Pipeline), r.Status.Name(), r.Created.ToString("u", CultureInfo.InvariantCulture));
            output.Write(table);
            return Cli.ExitCodes.Ok;
        }));
        return command;
    }

    private static Command Report(IAnsiConsole? console)
    {
        var runId = new Option<string>("--run") { Description = "Run id.", Required = true };
        var storage = StorageOption();
        var command = new Command("report", "Write RUN/report.html: one self-contained page with the stage table, lineage, split report, charts, sample pairs and held-out samples.") { runId, storage };
        command.SetAction((parse, ct) => Execute(console, async output =>
        {
            string id = parse.GetValue(runId)!;
            var store = OpenStore(parse.GetValue(storage));
            if (await RunRecord.LoadAsync(store, id, ct).ConfigureAwait(false) is null) throw new ArgumentException($"run '{id}' not found in {store.Location}; pass --storage if the run lives elsewhere");
            // Held-out prompt texts come from the run's pipeline; a run whose pipeline no longer loads still gets its page.
            LoadedPipeline? pipeline = null;
            try
            {
                pipeline = await LoadRunPipelineAsync(store, id, "pass --storage if the run lives elsewhere", ct).ConfigureAwait(false);
            }
            catch (PipelineFileException)
            {
                pipeline = null;
            }
            // Training charts of a run on a remote store stay in the machine's work folder (as the runner names it).
            string? work = store is LocalArtifactStore ? null : Path.Combine(Path.GetTempPath(), "prefpipe", id);
            string uri = await RunReportWriter.WriteAsync(store, id, pipeline, work, ct).ConfigureAwait(false);
            output.Profile.Out.Writer.WriteLine(uri);
            output.Profile.Out.Writer.Flush();
            return Cli.ExitCodes.Ok;
        }));
        return command;
    }

    private static async Task<int> RunAsync(string command, IAnsiConsole output, LoadedPipeline pipeline, string runId, RunScope scope, CancellationToken ct, IArtifactStore? runStore = null)
    {
        // resume and rerun continue in the store the run was found in, which --storage may have named.
        var store = runStore ?? OpenStore(pipeline.Resolve(pipeline.Definition.Storage));
        output.MarkupLine($"[bold]run {Markup.Escape(runId)}[/] ({Markup.Escape(pipeline.File)}) → {Markup.Escape(store.Location)}");
        RunRecord run;
        try
        {
            run = await RunWithProgressAsync(output, pipeline, store, runId, scope, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            output.MarkupLine($"[yellow]cancelled[/]: continue with [bold]prefpipe resume --run {Markup.Escape(runId)}[/]");
            return Cli.ExitCodes.Failed;
        }
        catch (Exception ex)
        {
            // The store may be what failed (full, unreachable): the table is a courtesy, the error line is the report.
            RunRecord? failed = null;
            try
            {
                failed = await RunRecord.LoadAsync(store, runId, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception readError) when (CliErrors.IsExpected(readError))
            {
                failed = null; // Most likely the error below again: say it once.
            }
            if (failed is not null) Summary(output, failed);
            int code = CliErrors.Report(command, ex);
            if (failed is not null) output.MarkupLine($"fix the cause, then [bold]prefpipe resume --run {Markup.Escape(runId)}[/]");
            return code;
        }
        Summary(output, run);
        return Cli.ExitCodes.Ok;
    }

    /// <summary>
    /// On a terminal, a progress bar per long stage (ingest prompts, training steps) with the log lines above it;
    /// otherwise (redirected output, CI, containers) the runner's plain lines, at most one progress line per 2 s.
    /// </summary>
    private static async Task<RunRecord> RunWithProgressAsync(IAnsiConsole output, LoadedPipeline pipeline, IArtifactStore store, string runId, RunScope scope, CancellationToken ct)
    {
        // Spectre's console is interactive and ANSI only on a terminal (stdout not redirected, TERM not dumb).
        if (!output.Profile.Capabilities.Interactive || !output.Profile.Capabilities.Ansi)
            return await new PipelineRunner(pipeline, store, line => output.WriteLine(line)).RunAsync(runId, scope, ct).ConfigureAwait(false);
        return await output.Progress().AutoClear(false).HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .StartAsync(async context =>
            {
                var bars = new Dictionary<PipelineStage, ProgressTask>();
                var progress = new InlineProgress<RunProgress>(p =>
                {
                    lock (bars)
                    {
                        if (!bars.TryGetValue(p.Stage, out var bar)) bars[p.Stage] = bar = context.AddTask(p.Stage.Name(), maxValue: Math.Max(1, p.Total));
                        bar.MaxValue = Math.Max(1, p.Total);
                        bar.Value = p.Done;
                    }
                });
                var runner = new PipelineRunner(pipeline, store, line => output.WriteLine(line)) { Progress = progress };
                return await runner.RunAsync(runId, scope, ct).ConfigureAwait(false);
            }).ConfigureAwait(false);
    }

    /// <summary>Reports on the caller's thread (Progress&lt;T&gt; would post to a thread pool and reorder reports).</summary>
    private sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }

    /// <summary>The end-of-run table: rows per stage, split fractions, win rate, rewards, wall time.</summary>
    internal static void Summary(IAnsiConsole output, RunRecord run)
    {
        var table = new Table().Border(TableBorder.Rounded).Title($"run {Markup.Escape(run.RunId)}: {run.Status.Name()}")
            .AddColumn("stage").AddColumn("status").AddColumn(new TableColumn("rows in").RightAligned()).AddColumn(new TableColumn("out").RightAligned())
            .AddColumn(new TableColumn("rejected").RightAligned()).AddColumn(new TableColumn("seconds").RightAligned()).AddColumn("notes");
        foreach (var s in run.Stages)
        {
            string notes = StageNotes.For(s);
            if (s.Error is not null) notes = "[red]" + Markup.Escape(s.Error) + "[/]";
            else notes = Markup.Escape(notes);
            table.AddRow(s.Name.Name(), s.Status.Name(), N(s.RowsIn), N(s.RowsOut), N(s.RowsRejected), s.Seconds.ToString("F1", CultureInfo.InvariantCulture), notes);
        }
        output.Write(table);
        var measured = run.Stages.Where(s => s.Status == StageStatus.Completed && s.Summary.ContainsKey("model_seconds")).ToList();
        double stageSeconds = measured.Sum(s => s.Seconds), modelSeconds = measured.Sum(s => s.Summary["model_seconds"]);
        if (stageSeconds > 0 && modelSeconds > 0)
            output.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                $"model compute {modelSeconds:F1} s of {stageSeconds:F1} s in stages; {Math.Max(0, 100 * (1 - modelSeconds / stageSeconds)):F1}% went to tokenisation, I/O and bookkeeping"));
        var eval = run.Stage(PipelineStage.Evaluate).Summary;
        if (eval.TryGetValue("win_rate", out double win))
            output.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                $"[bold]win rate of the final policy over the start: {win * 100:F1}%[/]; mean reward {eval["mean_reward_start"]:F3} → {eval["mean_reward_final"]:F3}; KL {eval["mean_kl"]:F3}; total {run.Stages.Sum(s => s.Seconds):F0} s"));

        static string N(long n) => n.ToString(CultureInfo.InvariantCulture);
    }

    internal static async Task<(LoadedPipeline, IArtifactStore)> LoadRunPipelineAsync(string? storage, string runId, CancellationToken ct)
    {
        var store = OpenStore(storage);
        return (await LoadRunPipelineAsync(store, runId, "pass --storage if the run lives elsewhere", ct).ConfigureAwait(false), store);
    }

    /// <summary>
    /// The run's saved pipeline.yaml, its relative paths resolved against the original pipeline folder (run.json's
    /// pipeline_dir), as resume, rerun and shard workers need it.
    /// </summary>
    internal static async Task<LoadedPipeline> LoadRunPipelineAsync(IArtifactStore store, string runId, string hint, CancellationToken ct)
    {
        ArtifactPath.ValidateName(runId, "run id");
        string path = $"{runId}/pipeline.yaml";
        if (!await store.ExistsAsync(path, ct).ConfigureAwait(false))
            throw new ArgumentException($"run '{runId}' not found in {store.Location} (no {path}); {hint}");
        string temp = Path.Combine(Path.GetTempPath(), $"prefpipe-{runId}-{Guid.NewGuid():N}.yaml");
        try
        {
            await using (var s = await store.OpenReadAsync(path, ct).ConfigureAwait(false))
            await using (var f = File.Create(temp))
                await s.CopyToAsync(f, ct).ConfigureAwait(false);
            var run = await RunRecord.LoadAsync(store, runId, ct).ConfigureAwait(false);
            return PipelineLoader.Load(temp, [], _ => null, run?.PipelineDirectory);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    private static async Task<List<string>> ListRunsAsync(IArtifactStore store, CancellationToken ct)
    {
        var ids = new List<string>();
        await foreach (string path in store.ListAsync("", ct).ConfigureAwait(false))
            if (path.EndsWith("/run.json", StringComparison.Ordinal) && path.Count(c => c == '/') == 1) ids.Add(path.Split('/')[0]);
        return ids.OrderBy(x => x, StringComparer.Ordinal).ToList();
    }

    internal static IArtifactStore OpenStore(string? location)
    {
        location ??= Environment.GetEnvironmentVariable("PREFPIPE_STORAGE") ?? "./runs";
        // Local folders stay unwrapped (the runner keeps its work files beside the run); blob stores get the resilience pipeline.
        return ArtifactStores.IsBlobLocation(location) ? ArtifactStores.Open(location) : new LocalArtifactStore(location);
    }

    /// <summary>A --from/--until value as a stage; an unknown name is refused, naming the known ones.</summary>
    private static PipelineStage? Stage(string? name) => name is null ? null : RunVocabulary.ParseStage(name);

    private static async Task<int> Execute(IAnsiConsole? console, Func<IAnsiConsole, Task<int>> action)
    {
        var output = console ?? AnsiConsole.Console;
        try
        {
            return await action(output).ConfigureAwait(false);
        }
        catch (Exception ex) when (CliErrors.IsExpected(ex))
        {
            return CliErrors.Report("", ex);
        }
    }
}
