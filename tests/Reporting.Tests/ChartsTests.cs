using System.Buffers.Binary;

namespace PrefPipe.Reporting.Tests;

public sealed class ChartsTests
{
    private static (int Width, int Height) PngSize(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], bytes[..4]);
        return (BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(16)), BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(20)));
    }

    [Fact]
    public void Histogram_TwoSeriesWithThreshold_WritesPngAndNoTemporaryFiles()
    {
        string dir = Directory.CreateTempSubdirectory("prefpipe-chart-").FullName;
        string path = Path.Combine(dir, "gaps.png");
        var rng = new Random(1);

        Charts.Histogram(path, "Reward gap", "gap",
            [new ChartSeries("easy", [], Enumerable.Range(0, 300).Select(_ => rng.NextDouble() * 3 + 1).ToArray()),
             new ChartSeries("difficult", [], Enumerable.Range(0, 300).Select(_ => rng.NextDouble()).ToArray())],
            [new ChartMarker(1.0, "τ = 1.0")]);

        Assert.Equal((Charts.Width, Charts.Height), PngSize(path));
        Assert.Equal(["gaps.png"], Directory.GetFiles(dir).Select(Path.GetFileName));
        Assert.True(new FileInfo(path).Length > 5_000, "a chart with bars, axes and text is more than a blank image");
    }

    [Fact]
    public void Histogram_AllValuesEqualOrNaN_StillWritesAChart()
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory("prefpipe-chart-").FullName, "flat.png");

        Charts.Histogram(path, "flat", "x", [new ChartSeries("v", [], [2.0, 2.0, double.NaN])]);

        Assert.Equal((Charts.Width, Charts.Height), PngSize(path));
    }

    [Fact]
    public void Lines_LossCurve_WritesPng()
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory("prefpipe-chart-").FullName, "sub", "loss.png");
        double[] steps = Enumerable.Range(1, 50).Select(i => (double)i).ToArray();

        Charts.Lines(path, "Loss", "step", "loss",
            [new ChartSeries("loss", steps, steps.Select(s => Math.Exp(-s / 10)).ToArray()),
             new ChartSeries("margin", steps, steps.Select(s => s / 50).ToArray())]);

        Assert.Equal((Charts.Width, Charts.Height), PngSize(path));
    }

    [Fact]
    public void Intervals_StudyCells_WritesPngAndNoTemporaryFiles()
    {
        string dir = Directory.CreateTempSubdirectory("prefpipe-chart-").FullName;
        string path = Path.Combine(dir, "win_rate.png");

        Charts.Intervals(path, "Win rate over the start (95 % interval)", "win rate",
            [new ChartInterval("dpo", 0.81, 0.74, 0.88), new ChartInterval("mipo", 0.62, 0.51, 0.72), new ChartInterval("mpo", 0.9, 0.9, 0.9)]);

        Assert.Equal((Charts.Width, Charts.Height), PngSize(path));
        Assert.Equal(["win_rate.png"], Directory.GetFiles(dir).Select(Path.GetFileName));
        Assert.True(new FileInfo(path).Length > 5_000, "a chart with bars, ticks and text is more than a blank image");
    }

    [Fact]
    public void Intervals_ManyCellsInSweeps_GrowsSoEveryLabelHasItsRow()
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory("prefpipe-chart-").FullName, "win_rate.png");
        var cells = Enumerable.Range(0, 22).Select(i => new ChartInterval($"dpo-loss{i / 3}-beta{i % 3}", 0.5 + i / 100.0, 0.4, 0.7, $"dpo-loss{i / 3}")).ToList();

        Charts.Intervals(path, "22 cells, 8 sweeps", "win rate", cells);

        Assert.Equal((Charts.Width, Charts.RowMargin + (Charts.RowHeight * 22)), PngSize(path));
    }

    [Fact]
    public void Points_ManySeriesOfOneGroup_LegendKeepsOneColumn()
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory("prefpipe-chart-").FullName, "frontier.png");

        Charts.Points(path, "Reward against KL", "KL", "reward",
            [.. Enumerable.Range(0, 25).Select(i => new ChartSeries($"mipo-beta{i}", [i * 10.0, i * 11.0], [1.0, 1.5], "mipo"))]);

        // 25 entries: taller than the default so the legend stays one column beside the plot.
        Assert.Equal((Charts.Width + Charts.LegendWidth, Charts.RowMargin + (Charts.LegendRowHeight * 25)), PngSize(path));
        Assert.True(new FileInfo(path).Length > 5_000);
    }

    [Fact]
    public void Intervals_NoCells_StillWritesAChart()
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory("prefpipe-chart-").FullName, "empty.png");

        Charts.Intervals(path, "nothing yet", "win rate", []);

        Assert.Equal((Charts.Width, Charts.Height), PngSize(path));
    }

    [Fact]
    public void Points_FrontierWithAnEmptySeries_WritesPng()
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory("prefpipe-chart-").FullName, "frontier.png");

        Charts.Points(path, "Reward against KL", "KL to the start policy", "mean reward",
            [new ChartSeries("dpo", [10.0, 12.5, 11.0], [2.1, 2.3, 2.2]), new ChartSeries("ppo", [20.0, 22.0], [2.5, 2.6]), new ChartSeries("none", [], [])]);

        Assert.Equal((Charts.Width + Charts.LegendWidth, Charts.Height), PngSize(path)); // the legend beside the plot, not over points
        Assert.True(new FileInfo(path).Length > 5_000, "a chart with points, axes and a legend is more than a blank image");
    }

    [Fact]
    public void SummaryTable_RendersMarkdownAndAlignedText()
    {
        var table = new SummaryTable("set", "pairs", "fraction").Add("easy", 120, 0.6).Add("difficult", 80, 1.0 / 3);

        Assert.Equal("| set | pairs | fraction |\n| --- | --- | --- |\n| easy | 120 | 0.6 |\n| difficult | 80 | 0.3333 |\n",
            table.ToMarkdown().ReplaceLineEndings("\n"));
        Assert.StartsWith("set        pairs  fraction", table.ToString(), StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => table.Add("only one cell"));
    }
}
