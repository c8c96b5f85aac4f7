using System.CommandLine;
using System.Text.Json;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Studies;
using Spectre.Console;

namespace PrefPipe.Host.Commands;

/// <summary><c>prefpipe study FILE</c>: a grid of runs over a base pipeline, with seeds, bootstrap intervals and charts.</summary>
internal static class StudyCommand
{
    private const string Help = """
        Run a method study: every cell (a set of overrides of the base pipeline) once per seed, then study.json, study.md,
        win_rate.png and frontier.png in STORAGE/NAME/. The study file:
          name: plans                      # optional; default the file's name. Run ids are NAME-CELL-sSEED
          base: demo.yaml                  # the base pipeline, relative to the study file
          seeds: [1, 2, 3]                 # written to training.dpo.seed, training.ppo.seed and evaluation.seed;
          seed_keys: [...]                 # optional: other keys (add ingest.seed to vary the data too)
          set: { evaluation.samples_per_prompt: 8 }   # optional: overrides every cell starts from
          reference: dpo                   # optional: the cell paired differences are taken against (default the first)
          cells:
            - name: dpo
              set: { training.plan: dpo }
            - name: mipo                   # a sweep: one cell per value (mipo-beta5, mipo-beta20, mipo-beta25);
              set: { training.plan: dpo, training.dpo.objective.loss_type: mipo }   # the best per sweep is reported
              sweep: { training.dpo.objective.beta: [5, 20, 25] }
            - name: pointwise              # pairs by reward argmax/argmin instead of iterative pairwise ranking
              set: { training.plan: dpo, ranking.method: pointwise }
        Runs whose ingest, rank or split has the same options, inputs and code share it: an earlier run's outputs are
        copied in (run.json names it in reused_from), so a study ingests once per data seed.
        study.json: one row per cell (plan, loss_type, beta, ranking, set, seeds, win_rate_mean, win_rate_ci95_low/high,
        mean_reward_start/final, mean_kl, train_seconds, per_seed), paired_differences against the reference over shared
        seeds, best_per_sweep. Intervals are 95% percentile bootstraps over seeds and, within each drawn seed, held-out
        prompts (2000 resamples, fixed RNG seed). A completed run is kept and a stopped one continues: run the same
        command again to resume a killed study. `prefpipe study --render PATH/study.json` writes study.md and the charts
        beside an existing study.json again without running anything.
        """;

    public static Command Create(IAnsiConsole? console)
    {
        var file = new Argument<string>("file") { Description = "Study file (YAML): base, seeds, cells." };
        var storage = new Option<string?>("--storage") { Description = "Artifact store for the study's runs and report, instead of the base pipeline's storage." };
        var set = new Option<string[]>("--set") { Description = "Override a value of the base pipeline for every cell: key.path=value (repeatable).", Arity = ArgumentArity.ZeroOrMore };
        var json = new Option<bool>("--json") { Description = "Print study.json instead of the table." };
        var render = new Option<bool>("--render") { Description = "FILE is an existing study.json: write study.md, win_rate.png and frontier.png beside it again, running nothing." };
        var command = new Command("study", Help) { file, storage, set, json, render };
        command.SetAction(async (parse, ct) =>
        {
            var output = console ?? AnsiConsole.Console;
            try
            {
                if (parse.GetValue(render))
                {
                    string path = parse.GetValue(file)!;
                    var rendered = await StudyRunner.RenderAsync(path, ct).ConfigureAwait(false);
                    output.WriteLine(StudyRunner.Markdown(rendered));
                    output.MarkupLine($"written beside [bold]{Markup.Escape(Path.GetFullPath(path))}[/]: study.md, win_rate.png, frontier.png");
                    return Cli.ExitCodes.Ok;
                }
                var study = StudyFile.Load(parse.GetValue(file)!);
                var overrides = (parse.GetValue(set) ?? []).ToList();
                if (parse.GetValue(storage) is { } location)
                    overrides.Add($"storage={(ArtifactStores.IsBlobLocation(location) ? location : Path.GetFullPath(location))}");
                bool quiet = parse.GetValue(json);
                var runner = new StudyRunner(study, overrides,
                    line => (quiet ? Console.Error : output.Profile.Out.Writer).WriteLine(line),
                    line => { if (!quiet) output.WriteLine(line); });
                var (report, store) = await runner.RunAsync(ct).ConfigureAwait(false);
                if (quiet)
                {
                    output.Profile.Out.Writer.WriteLine(JsonSerializer.Serialize(report, StudyRunner.Json));
                    output.Profile.Out.Writer.Flush();
                }
                else
                {
                    output.WriteLine(StudyRunner.Markdown(report));
                    output.MarkupLine($"study written to [bold]{Markup.Escape(store.UriOf($"{study.Name}/study.json"))}[/] (with study.md, win_rate.png, frontier.png)");
                }
                return Cli.ExitCodes.Ok;
            }
            catch (OperationCanceledException)
            {
                output.MarkupLine("[yellow]cancelled[/]: run the same command again to continue the study");
                return Cli.ExitCodes.Failed;
            }
            catch (Exception ex) when (CliErrors.IsExpected(ex))
            {
                return CliErrors.Report("study", ex);
            }
        });
        return command;
    }
}
