using System.Net;
using System.Text.RegularExpressions;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Runs;
using Spectre.Console.Testing;

namespace PrefPipe.Host.Tests.Runs;

/// <summary>RUN/report.html of a real run of the demo pipeline (shrunk), read as text and rendered in headless Chromium.</summary>
public sealed partial class RunReportTests
{
    private static async Task<(int Exit, string Output)> Cli(params string[] args)
    {
        var console = new TestConsole().Width(250);
        int exit = await PrefPipe.Host.Commands.Cli.InvokeAsync(args, console);
        return (exit, console.Output);
    }

    [Fact]
    public async Task Run_CompletedThenFailedRerun_ReportShowsEveryStageChartPairAndSample_AndRendersInChromium()
    {
        string storage = Directory.CreateTempSubdirectory("prefpipe-report-").FullName;
        string file = PipelineRunnerTests.Pipeline(storage);
        string eval = Path.Combine(storage, "eval.jsonl");
        File.Copy(Path.Combine(AppContext.BaseDirectory, "fixtures", "demo", "eval_prompts.jsonl"), eval);

        var (exit, output) = await Cli(["run", file, "--run-id", "rep", "--set", $"inputs.eval_prompts={eval}", .. PipelineRunnerTests.Small]);
        Assert.True(exit == 0, output);
        string page = Path.Combine(storage, "rep", "report.html");
        Assert.Contains($"report: {page}", output, StringComparison.Ordinal);
        string html = await File.ReadAllTextAsync(page);

        var store = new LocalArtifactStore(storage);
        var run = (await RunRecord.LoadAsync(store, "rep", CancellationToken.None))!;
        // The stage table: every stage with run.json's status, counts and seconds.
        var rows = StageRows().Matches(StageTable().Match(html).Value)
            .Select(m => (m.Groups[1].Value, m.Groups[2].Value, long.Parse(m.Groups[3].Value), long.Parse(m.Groups[4].Value), long.Parse(m.Groups[5].Value), m.Groups[6].Value)).ToList();
        Assert.Equal(run.Stages.Select(s => (s.Name.Name(), "completed", s.RowsIn, s.RowsOut, s.RowsRejected, s.Seconds.ToString("F1", System.Globalization.CultureInfo.InvariantCulture))), rows);
        Assert.Equal(240, rows[0].Item3);
        // Lineage: the config hash, the code version and every artifact's SHA-256.
        Assert.Contains(run.ConfigHash, html, StringComparison.Ordinal);
        Assert.Contains(WebUtility.HtmlEncode(run.CodeVersion), html, StringComparison.Ordinal);
        Assert.All(run.Stages.SelectMany(s => s.Outputs), a => Assert.Contains(a.Sha256, html, StringComparison.Ordinal));
        using (var split = System.Text.Json.JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(storage, "rep", "split", "report.json"))))
        {
            string fraction = split.RootElement.GetProperty("easy_fraction").GetDouble().ToString("G6", System.Globalization.CultureInfo.InvariantCulture);
            Assert.Contains($"<td>easy fraction</td><td class=\"num\">{fraction}</td>", html, StringComparison.Ordinal);
        }

        // Every chart the run wrote, embedded byte for byte, in stage order.
        var charts = Directory.GetFiles(Path.Combine(storage, "rep"), "*.png", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(Path.Combine(storage, "rep"), f).Replace('\\', '/')).Where(r => r.Count(c => c == '/') == 1)
            .OrderBy(r => PrefPipe.Host.Runs.Stages.All.ToList().FindIndex(s => r.StartsWith(s.Name() + "/", StringComparison.Ordinal))).ToList();
        Assert.Equal(["split/gap_histogram.png", "dpo/loss.png", "ppo/reward_kl.png", "evaluate/reward_distributions.png"], charts);
        var images = Images().Matches(html).ToList();
        Assert.Equal(charts, images.Select(m => m.Groups[1].Value));
        for (int i = 0; i < charts.Count; i++)
            Assert.Equal(Convert.ToBase64String(File.ReadAllBytes(Path.Combine(storage, "rep", charts[i]))), images[i].Groups[2].Value);

        // Sample pairs: the first easy pair as split wrote it, with the judge calls made for its prompt.
        var easy = (await PreferenceArtifacts.ReadAllAsync(store, "rep/split/easy.parquet"))[0];
        var calls = (await ParquetArtifacts.ReadAllAsync<ComparisonRow>(store, "rep/rank/comparisons.parquet")).Where(c => c.PromptId == easy.PromptId).ToList();
        Assert.NotEmpty(calls);
        var pair = Regex.Match(html, $"<div class=\"pair\"><p><b>easy</b> · <span class=\"mono\">{Regex.Escape(easy.PromptId)}</span>.*?(?=<div class=\"pair\">|<h2)", RegexOptions.Singleline).Value;
        Assert.Contains(WebUtility.HtmlEncode(easy.Chosen), pair, StringComparison.Ordinal);
        Assert.Contains(WebUtility.HtmlEncode(easy.Rejected), pair, StringComparison.Ordinal);
        Assert.Contains(easy.ScoreChosen.ToString("F3", System.Globalization.CultureInfo.InvariantCulture), pair, StringComparison.Ordinal);
        Assert.Equal(calls.Count, Regex.Count(Regex.Match(pair, "judge verdicts: (.*?)</p>").Groups[1].Value, " vs "));
        Assert.Equal(RunReportWriter.PairsPerSet * 2, Regex.Count(html, "<div class=\"pair\">"));

        // Held-out: the first prompt's text from the eval file, the start and final samples side by side.
        var samples = (await ParquetArtifacts.ReadAllAsync<EvaluationRow>(store, "rep/evaluate/samples.parquet")).Where(s => s.PromptId == "eval-0").ToList();
        var heldOut = Regex.Match(html, "<div class=\"heldout\"><p><span class=\"mono\">eval-0</span>: <span class=\"text\">Review of Velvet Hour:</span>.*?</div></div>", RegexOptions.Singleline).Value;
        Assert.NotEmpty(heldOut);
        Assert.Equal(["start", "final"], samples.Select(s => s.Policy));
        Assert.True(heldOut.IndexOf(WebUtility.HtmlEncode(samples[0].Response), StringComparison.Ordinal) < heldOut.IndexOf(WebUtility.HtmlEncode(samples[1].Response), StringComparison.Ordinal));
        Assert.Equal(RunReportWriter.HeldOutPrompts, Regex.Count(html, "<div class=\"heldout\">"));

        // In a real browser: no console message at all (the page has no script; a blocked load would log one), the stage
        // table in the DOM, and a screenshot with text and the charts' colours in it.
        using (var rendered = await HeadlessChromium.RenderAsync(page))
        {
            Assert.True(rendered.ConsoleMessages.Count == 0, string.Join('\n', rendered.ConsoleMessages));
            Assert.Contains("<table id=\"stage-table\">", rendered.Dom, StringComparison.Ordinal);
            Assert.Equal(run.Stages.Count, StageRows().Count(StageTable().Match(rendered.Dom).Value.Replace("<tbody>", "", StringComparison.Ordinal)));
            var (ink, colour) = Pixels(rendered);
            Assert.True(ink > 0.02, $"only {ink:P2} of the screenshot differs from white");
            // The page's own colours are a few words of green status text; the charts' bars and lines bring the rest.
            Assert.True(colour > 20_000, $"{colour} coloured pixels: the embedded charts were not drawn");
        }

        // A failed attempt: the page says which stage failed and why (run.json's error), and keeps what earlier stages wrote.
        await File.WriteAllTextAsync(eval, "");
        var (failedExit, failedOutput) = await Cli("rerun", "--run", "rep", "--stage", "evaluate", "--storage", storage);
        Assert.NotEqual(0, failedExit);
        run = (await RunRecord.LoadAsync(store, "rep", CancellationToken.None))!;
        var evaluate = run.Stage(PipelineStage.Evaluate);
        Assert.Equal(StageStatus.Failed, evaluate.Status);
        html = await File.ReadAllTextAsync(page);
        Assert.Contains($"<div class=\"failure\" id=\"failure\"><b>stage evaluate failed</b>: <span class=\"text\">{WebUtility.HtmlEncode(evaluate.Error!)}</span></div>", html, StringComparison.Ordinal);
        Assert.Contains("id=\"run-status\">failed</b>", html, StringComparison.Ordinal);
        Assert.Equal(charts.Count, Images().Count(html));
        Assert.Contains("report: ", failedOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Report_Command_RewritesThePage_AndAnUnknownRunExitsTwo()
    {
        string storage = Directory.CreateTempSubdirectory("prefpipe-report-").FullName;
        string file = PipelineRunnerTests.Pipeline(storage);
        var (exit, output) = await Cli(["run", file, "--run-id", "r2", "--until", "split", .. PipelineRunnerTests.Small]);
        Assert.True(exit == 0, output);
        string page = Path.Combine(storage, "r2", "report.html");
        string first = await File.ReadAllTextAsync(page);
        File.Delete(page);

        var (reportExit, printed) = await Cli("report", "--run", "r2", "--storage", storage);

        Assert.True(reportExit == 0, printed);
        Assert.Equal(page, printed.Trim());
        Assert.Equal(first, await File.ReadAllTextAsync(page));
        // Until split: pairs from the split sets, no held-out samples, the stages after split skipped.
        Assert.Contains("<b>difficult</b>", first, StringComparison.Ordinal);
        Assert.Contains("No evaluation samples", first, StringComparison.Ordinal);
        Assert.Contains("<tr><td>dpo</td><td class=\"status-skipped\">skipped</td>", first, StringComparison.Ordinal);

        var (missing, _) = await Cli("report", "--run", "nope", "--storage", storage);
        Assert.Equal(2, missing);
    }

    [Fact]
    public async Task HeadlessChromium_PageLoadingAnExternalImage_ReportsTheBlockedLoad()
    {
        // The console check above can fail: a page of the report's shape that names an external URL logs its refusal.
        string dir = Directory.CreateTempSubdirectory("prefpipe-report-").FullName;
        string page = Path.Combine(dir, "bad.html");
        string html = PrefPipe.Reporting.RunReportPage.Render(new PrefPipe.Reporting.RunReport { RunId = "x", Status = "completed" })
            .Replace("</body>", "<img src=\"http://example.invalid/x.png\"></body>", StringComparison.Ordinal);
        await File.WriteAllTextAsync(page, html);

        using var rendered = await HeadlessChromium.RenderAsync(page, 400, 300);

        Assert.Contains(rendered.ConsoleMessages, m => m.Contains("http://example.invalid/x.png", StringComparison.Ordinal));
    }

    /// <summary>Share of non-white pixels, and how many pixels are clearly coloured (not grey: max − min channel ≥ 80).</summary>
    private static (double Ink, int Colour) Pixels(RenderedPage page)
    {
        int ink = 0, colour = 0;
        var bitmap = page.Screenshot;
        for (int y = 0; y < bitmap.Height; y++)
            for (int x = 0; x < bitmap.Width; x++)
            {
                var c = bitmap.GetPixel(x, y);
                if (c.Red < 245 || c.Green < 245 || c.Blue < 245) ink++;
                if (Math.Max(c.Red, Math.Max(c.Green, c.Blue)) - Math.Min(c.Red, Math.Min(c.Green, c.Blue)) >= 80) colour++;
            }
        return (ink / (double)(bitmap.Width * bitmap.Height), colour);
    }

    [GeneratedRegex("<table id=\"stage-table\">.*?</table>", RegexOptions.Singleline)]
    private static partial Regex StageTable();

    [GeneratedRegex("<tr><td>(\\w+)</td><td class=\"status-\\w+\">(\\w+)</td><td class=\"num\">(\\d+)</td><td class=\"num\">(\\d+)</td><td class=\"num\">(\\d+)</td><td class=\"num\">([0-9.]+)</td>")]
    private static partial Regex StageRows();

    [GeneratedRegex("<figure><img alt=\"([^\"]+)\" src=\"data:image/png;base64,([^\"]+)\">")]
    private static partial Regex Images();
}
