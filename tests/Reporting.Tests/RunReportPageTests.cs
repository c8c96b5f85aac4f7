using System.Text.RegularExpressions;

namespace PrefPipe.Reporting.Tests;

public sealed partial class RunReportPageTests
{
    private static byte[] Chart()
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory("prefpipe-report-").FullName, "c.png");
        Charts.Lines(path, "loss", "step", "loss", [new ChartSeries("loss", [1, 2, 3], [0.7, 0.5, 0.4])]);
        return File.ReadAllBytes(path);
    }

    private static RunReport Report(string hostile) => new()
    {
        RunId = "r1",
        Pipeline = "demo",
        Status = "failed",
        FailedStage = "evaluate",
        Failure = $"eval.jsonl: line 3 {hostile}",
        Facts = [new("config hash", "abc"), new("code version", "1.0")],
        Stages =
        [
            new("ingest", "completed", 240, 238, 2, 17.26, "960 candidates", null, "input rows = prompts + rejected"),
            new("evaluate", "failed", 0, 0, 0, 0.5, "", $"bad {hostile}", null),
        ],
        Artifacts = [new("ingest", "out", "prompts", "/runs/r1/ingest/prompts.parquet", 238, new string('a', 64))],
        SplitReport = [new("easy fraction", "0.5")],
        Charts = [new ReportChart("dpo/loss.png", Chart()), new ReportChart("split/gap_histogram.png", Chart())],
        Pairs = [new("easy", "p-1", $"Review {hostile}", "good", "bad", 2, 1, 1.5, -0.25, true, [new ReportVerdict(1, 2, "b", "reward"), new ReportVerdict(0, 2, "tie", "reward")])],
        HeldOut = [new("eval-0", "Review of X:", [new ReportSample(0, "meh", -0.5, 0)], [new ReportSample(0, "great", 2.25, 3.5)])],
    };

    [Fact]
    public void Render_HostileText_IsEscapedEverywhere()
    {
        const string hostile = "<script>alert('x')</script> & \"quoted\" <img src=x onerror=alert(1)>";

        string html = RunReportPage.Render(Report(hostile));

        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("<img src=x", html, StringComparison.Ordinal);
        Assert.Contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quoted&quot;", html, StringComparison.Ordinal);
        // The prompt, the stage's error and the run's failure: three places, all escaped.
        Assert.Equal(3, Regex.Count(html, "&lt;script&gt;"));
    }

    [Fact]
    public void Render_Charts_AreEmbeddedPngDataUrisAndNothingIsExternal()
    {
        var report = Report("x");

        string html = RunReportPage.Render(report);

        var sources = ImgSrc().Matches(html).Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(2, sources.Count);
        Assert.Equal(Convert.ToBase64String(report.Charts[0].Png.Span), sources[0]["data:image/png;base64,".Length..]);
        Assert.All(sources, s => Assert.StartsWith("data:image/png;base64,iVBORw0KGgo", s, StringComparison.Ordinal));
        string withoutImages = ImgSrc().Replace(html, "<img>");
        Assert.DoesNotMatch("(?i)(https?:|//[a-z]|<link|<script|url\\(|src=|href=)", withoutImages);
        Assert.Contains("default-src 'none'; img-src data:; style-src 'unsafe-inline'", html, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_NotAPng_IsNotEmbedded()
    {
        var report = Report("x") with { Charts = [new ReportChart("dpo/loss.png", "<svg onload=alert(1)>"u8.ToArray())] };

        string html = RunReportPage.Render(report);

        Assert.DoesNotContain("data:image", html, StringComparison.Ordinal);
        Assert.Contains("not a PNG file", html, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_FailedRun_SaysWhichStageAndWhy_AndTheStageTableHasEveryStage()
    {
        string html = RunReportPage.Render(Report("boom"));

        Assert.Matches("<div class=\"failure\" id=\"failure\"><b>stage evaluate failed</b>: <span class=\"text\">eval.jsonl: line 3 boom</span>", html);
        var rows = Regex.Matches(StageTable().Match(html).Value, "<tr><td>(.*?)</td><td class=\"status-[a-z]+\">(.*?)</td><td class=\"num\">(\\d+)</td><td class=\"num\">(\\d+)</td><td class=\"num\">(\\d+)</td><td class=\"num\">([0-9.]+)</td>");
        Assert.Equal([("ingest", "completed", "240", "238", "2", "17.3"), ("evaluate", "failed", "0", "0", "0", "0.5")],
            rows.Select(r => (r.Groups[1].Value, r.Groups[2].Value, r.Groups[3].Value, r.Groups[4].Value, r.Groups[5].Value, r.Groups[6].Value)));
        Assert.Contains("judge verdicts: 1 vs 2: 2 (reward), 0 vs 2: tie (reward)", html, StringComparison.Ordinal);
        Assert.Contains("sample 0 · reward 2.250 · KL 3.500", html, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_CompletedRun_HasNoFailureBanner()
    {
        string html = RunReportPage.Render(Report("x") with { Status = "completed", FailedStage = null, Failure = null });

        Assert.DoesNotContain("id=\"failure\"", html, StringComparison.Ordinal);
        Assert.Contains("id=\"run-status\">completed</b>", html, StringComparison.Ordinal);
    }

    [GeneratedRegex("<img alt=\"[^\"]*\" src=\"([^\"]*)\">")]
    private static partial Regex ImgSrc();

    [GeneratedRegex("<table id=\"stage-table\">.*?</table>", RegexOptions.Singleline)]
    private static partial Regex StageTable();
}
