using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using PrefPipe.Host.Runs;
using Spectre.Console;

namespace PrefPipe.Host.Commands;

/// <summary>
/// <c>prefpipe compare --run A --run B …</c>: training plans side by side — steps, training wall time, and the evaluation
/// (win rate over the starting policy, mean reward before and after, mean KL). pipelines/compare-plans.sh runs the
/// demo's plans with one budget and calls this.
/// </summary>
internal static class CompareCommand
{
    /// <summary>One compared run.</summary>
    internal sealed record Row(string RunId, string Plan, string Loss, int Steps, double TrainSeconds, double WinRate, double RewardStart, double RewardFinal, double Kl);

    public static Command Create(IAnsiConsole? console)
    {
        var runs = new Option<string[]>("--run") { Description = "Run ids to compare (repeat).", Required = true, Arity = ArgumentArity.OneOrMore };
        var storage = new Option<string?>("--storage") { Description = "Artifact store holding the runs (default: $PREFPIPE_STORAGE, else ./runs)." };
        var json = new Option<bool>("--json") { Description = "One JSON object per run." };
        var command = new Command("compare", "Compare finished runs: plan, steps, training time, win rate, mean reward before/after, KL.") { runs, storage, json };
        command.SetAction(async (parse, ct) =>
        {
            var output = console ?? AnsiConsole.Console;
            try
            {
                var rows = new List<Row>();
                foreach (string id in parse.GetValue(runs)!)
                    rows.Add(await LoadAsync(parse.GetValue(storage), id, ct).ConfigureAwait(false));
                if (parse.GetValue(json))
                {
                    foreach (var r in rows) output.WriteLine(JsonSerializer.Serialize(r, JsonOptions));
                    return Cli.ExitCodes.Ok;
                }
                var table = new Table().Border(TableBorder.Rounded).Title("training plans compared on held-out prompts")
                    .AddColumn("run").AddColumn("plan").AddColumn("dpo loss").AddColumn(new TableColumn("steps").RightAligned())
                    .AddColumn(new TableColumn("train s").RightAligned()).AddColumn(new TableColumn("win rate").RightAligned())
                    .AddColumn(new TableColumn("reward start → final").RightAligned()).AddColumn(new TableColumn("KL").RightAligned());
                foreach (var r in rows)
                    table.AddRow(Markup.Escape(r.RunId), r.Plan, r.Loss, r.Steps.ToString(CultureInfo.InvariantCulture), F(r.TrainSeconds, "F1"),
                        F(r.WinRate * 100, "F1") + "%", $"{F(r.RewardStart, "F3")} → {F(r.RewardFinal, "F3")}", F(r.Kl, "F2"));
                output.Write(table);
                return Cli.ExitCodes.Ok;
            }
            catch (Exception ex) when (CliErrors.IsExpected(ex))
            {
                return CliErrors.Report("compare", ex);
            }
        });
        return command;
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private static string F(double v, string format) => v.ToString(format, CultureInfo.InvariantCulture);

    internal static async Task<Row> LoadAsync(string? storage, string runId, CancellationToken ct)
    {
        var (pipeline, store) = await RunCommands.LoadRunPipelineAsync(storage, runId, ct).ConfigureAwait(false);
        var run = await RunRecord.LoadAsync(store, runId, ct).ConfigureAwait(false)
            ?? throw new ArgumentException($"run '{runId}' has no run.json in {store.Location}");
        var eval = run.Stage(PipelineStage.Evaluate);
        if (eval.Status != StageStatus.Completed)
            throw new ArgumentException($"run '{runId}': the evaluate stage is '{eval.Status.Name()}', not completed; nothing to compare");
        var d = pipeline.Definition;
        string plan = d.Training.Plan.ToString().ToLowerInvariant();
        var train = run.Stage(PipelineStage.Dpo);
        var ppo = run.Stage(PipelineStage.Ppo);
        bool s1 = d.Training.RunsDpo, s2 = d.Training.RunsPpo;
        int steps = (s1 ? (int)train.Summary.GetValueOrDefault("steps") : 0) + (s2 ? (int)ppo.Summary.GetValueOrDefault("steps") : 0);
        double seconds = (s1 ? train.Seconds : 0) + (s2 ? ppo.Seconds : 0);
        return new Row(runId, plan, s1 ? d.Training.Dpo.Objective.LossType : "-", steps, seconds,
            eval.Summary["win_rate"], eval.Summary["mean_reward_start"], eval.Summary["mean_reward_final"], eval.Summary["mean_kl"]);
    }
}
