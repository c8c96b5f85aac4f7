using System.Text.RegularExpressions;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Pipelines;
using PrefPipe.Host.Runs;

namespace PrefPipe.Host.Tests.Runs;

/// <summary>
/// The plain progress lines a run prints when its output is redirected (the runner's log, as <c>prefpipe run</c> writes it
/// without a terminal): every long step says how far it is, its throughput and the time left.
/// </summary>
public sealed partial class ProgressLinesTests
{
    [GeneratedRegex(@"^  rank: ranked (\d+)/240 prompts, (\d+) judge calls  \((\d+(\.\d+)?) comparisons/s, (\d+(\.\d+)?) prompts/s, about \d+ (s|min \d+ s) left\)$")]
    private static partial Regex Rank();

    [GeneratedRegex(@"^  rank: scored \d+/480 candidates  \(\d+(\.\d+)? candidates/s, (about .+ left|done)\)$")]
    private static partial Regex Scoring();

    [GeneratedRegex(@"^  reference pass: (\d+)/(\d+) pairs  \(\d+(\.\d+)? pairs/s, about \d+ (s|min \d+ s) left\)$")]
    private static partial Regex Reference();

    [GeneratedRegex(@"^  evaluate: (\d+)/120 samples  \(\d+(\.\d+)? samples/s, about \d+ (s|min \d+ s) left\)$")]
    private static partial Regex Evaluate();

    [GeneratedRegex(@"^  ingest: \d+/240 prompts, \d+ candidates  \(\d+(\.\d+)? prompts/s, about \d+ (s|min \d+ s) left\)$")]
    private static partial Regex Ingest();

    [Fact]
    public async Task Run_Redirected_LongStepsPrintThroughputAndTimeLeft()
    {
        string storage = Directory.CreateTempSubdirectory("prefpipe-progress-").FullName;
        var pipeline = PipelineLoader.Load(PipelineRunnerTests.Pipeline(storage), [.. PipelineRunnerTests.Small.Where((_, i) => i % 2 == 1)]);
        var lines = new List<string>();
        // Every report prints (the CLI prints at most one a 2 s): the stages of this small run take a few seconds each.
        var runner = new PipelineRunner(pipeline, new LocalArtifactStore(storage), line => { lock (lines) lines.Add(line); }) { ProgressInterval = TimeSpan.Zero };

        var run = await runner.RunAsync("progress", new RunScope());

        Assert.Equal(RunStatus.Completed, run.Status);
        Assert.Contains(lines, l => Ingest().IsMatch(l));
        Assert.Contains(lines, l => Scoring().IsMatch(l));
        // Ranking: prompts and judge calls only grow, and the last line has the run's judge calls.
        var rank = lines.Select(l => Rank().Match(l)).Where(m => m.Success).Select(m => (Prompts: int.Parse(m.Groups[1].Value), Calls: int.Parse(m.Groups[2].Value))).ToList();
        Assert.True(rank.Count > 100, $"{rank.Count} rank lines");
        Assert.Equal(rank.OrderBy(r => r.Prompts).ThenBy(r => r.Calls), rank);
        double calls = run.Stages.Single(s => s.Name == PipelineStage.Rank).Summary["judge_calls"];
        Assert.Contains(lines, l => l.StartsWith($"  rank: ranked 240/240 prompts, {calls} judge calls  (", StringComparison.Ordinal) && l.EndsWith(" prompts/s, done)", StringComparison.Ordinal));
        var reference = lines.Select(l => Reference().Match(l)).Where(m => m.Success).ToList();
        Assert.NotEmpty(reference);
        Assert.All(reference, m => Assert.Equal(run.Stages.Single(s => s.Name == PipelineStage.Dpo).RowsOut, long.Parse(m.Groups[2].Value)));
        Assert.Contains(lines, l => Evaluate().IsMatch(l)); // 60 held-out prompts, 1 sample each, start and final policy
    }
}
