using ScottPlot;

namespace PrefPipe.Reporting;

/// <summary>A vertical marker on a chart, e.g. a split threshold.</summary>
/// <param name="X">Where on the x axis.</param>
/// <param name="Label">Legend text.</param>
public sealed record ChartMarker(double X, string Label);

/// <summary>A named series of values (histograms) or points (line charts).</summary>
/// <param name="Name">Legend text.</param>
/// <param name="X">X values (line charts; ignored by histograms).</param>
/// <param name="Y">Values (histograms) or Y values (line charts).</param>
/// <param name="Group">Series of one group share a colour and differ by marker shape (scatter charts); null: a colour each.</param>
public sealed record ChartSeries(string Name, IReadOnlyList<double> X, IReadOnlyList<double> Y, string? Group = null);

/// <summary>A labelled estimate with its interval, e.g. a win rate and its 95 % bootstrap interval.</summary>
/// <param name="Label">Axis label (a study cell).</param>
/// <param name="Mean">The estimate.</param>
/// <param name="Low">Lower end of the interval.</param>
/// <param name="High">Upper end of the interval.</param>
/// <param name="Group">Items of one group share a colour (a sweep's cells); null: a colour each.</param>
public sealed record ChartInterval(string Label, double Mean, double Low, double High, string? Group = null);

/// <summary>PNG charts written next to reports. Files are written to a temporary name and renamed, never half-written.</summary>
public static class Charts
{
    /// <summary>Width and height of every chart, in pixels.</summary>
    public const int Width = 800, Height = 480;

    /// <summary>Extra width of a scatter chart whose legend sits right of the plot.</summary>
    public const int LegendWidth = 260;

    /// <summary>Height per label of an <see cref="Intervals"/> chart with many labels (and the margin around them).</summary>
    public const int RowHeight = 22, RowMargin = 90;

    /// <summary>Height per legend entry of a scatter chart with many series.</summary>
    public const int LegendRowHeight = 22;

    /// <summary>A histogram of one or more value sets (overlaid, semi-transparent), with optional vertical markers.</summary>
    /// <param name="path">Output .png path.</param>
    /// <param name="title">Chart title.</param>
    /// <param name="xLabel">X-axis label.</param>
    /// <param name="series">Value sets; each gets its own colour and legend entry.</param>
    /// <param name="markers">Vertical lines (thresholds, means).</param>
    /// <param name="bins">Number of bins over the joint range.</param>
    public static void Histogram(string path, string title, string xLabel, IReadOnlyList<ChartSeries> series,
        IReadOnlyList<ChartMarker>? markers = null, int bins = 30)
    {
        ArgumentNullException.ThrowIfNull(series);
        var plot = new Plot();
        var all = series.SelectMany(s => s.Y).Where(double.IsFinite).ToArray();
        if (all.Length > 0)
        {
            double min = all.Min(), max = all.Max();
            if (max <= min) { min -= 0.5; max += 0.5; }
            var palette = new ScottPlot.Palettes.Category10();
            for (int i = 0; i < series.Count; i++)
            {
                var values = series[i].Y.Where(double.IsFinite).ToArray();
                if (values.Length == 0) continue;
                double width = (max - min) / bins;
                var counts = new double[bins];
                foreach (double v in values) counts[Math.Clamp((int)((v - min) / width), 0, bins - 1)]++;
                var centers = Enumerable.Range(0, bins).Select(b => min + (b + 0.5) * width).ToArray();
                var bars = plot.Add.Bars(centers, counts);
                bars.Color = palette.GetColor(i).WithAlpha(series.Count > 1 ? 0.55 : 1.0);
                bars.LegendText = $"{series[i].Name} (n={values.Length})";
                foreach (var bar in bars.Bars)
                {
                    bar.Size = width;
                    bar.LineWidth = 0;
                }
            }
        }
        AddMarkers(plot, markers);
        Finish(plot, path, title, xLabel, "count", showLegend: series.Count > 1 || markers is { Count: > 0 });
    }

    /// <summary>Line chart of one or more series (loss curves, reward and KL over steps).</summary>
    public static void Lines(string path, string title, string xLabel, string yLabel, IReadOnlyList<ChartSeries> series,
        IReadOnlyList<ChartMarker>? markers = null)
    {
        ArgumentNullException.ThrowIfNull(series);
        var plot = new Plot();
        foreach (var s in series)
        {
            int n = Math.Min(s.X.Count, s.Y.Count);
            if (n == 0) continue;
            var line = plot.Add.ScatterLine(s.X.Take(n).ToArray(), s.Y.Take(n).ToArray());
            line.LegendText = s.Name;
            line.LineWidth = 2;
        }
        AddMarkers(plot, markers);
        Finish(plot, path, title, xLabel, yLabel, showLegend: series.Count > 1 || markers is { Count: > 0 });
    }

    /// <summary>
    /// One estimate per label with its interval as a horizontal bar, labels down the left in the given order (win rate
    /// per study cell). The chart grows with the number of labels so every label stays readable.
    /// </summary>
    public static void Intervals(string path, string title, string xLabel, IReadOnlyList<ChartInterval> items)
    {
        ArgumentNullException.ThrowIfNull(items);
        var plot = new Plot();
        var colours = GroupColours(items.Select(x => x.Group ?? x.Label).ToList());
        for (int i = 0; i < items.Count; i++)
        {
            double y = items.Count - 1 - i; // first item on top
            var color = colours[i].Colour;
            var bar = plot.Add.Line(items[i].Low, y, items[i].High, y);
            bar.Color = color;
            bar.LineWidth = 3;
            var mean = plot.Add.Marker(items[i].Mean, y);
            mean.Color = color;
            mean.MarkerSize = 9;
        }
        if (items.Count > 0)
        {
            plot.Axes.Left.SetTicks(Enumerable.Range(0, items.Count).Select(i => (double)(items.Count - 1 - i)).ToArray(), items.Select(x => x.Label).ToArray());
            plot.Axes.SetLimitsY(-0.7, items.Count - 0.3);
        }
        Finish(plot, path, title, xLabel, "", showLegend: false, height: Math.Max(Height, RowMargin + RowHeight * items.Count));
    }

    /// <summary>
    /// Scatter points, a legend entry per series (a reward–KL frontier: a series per cell, a point per seed). Series of
    /// one <see cref="ChartSeries.Group"/> share a colour and differ by marker shape; the legend sits right of the plot,
    /// never over the points.
    /// </summary>
    public static void Points(string path, string title, string xLabel, string yLabel, IReadOnlyList<ChartSeries> series)
    {
        ArgumentNullException.ThrowIfNull(series);
        var plot = new Plot();
        var styles = GroupColours(series.Select(s => s.Group ?? s.Name).ToList());
        for (int i = 0; i < series.Count; i++)
        {
            var s = series[i];
            int n = Math.Min(s.X.Count, s.Y.Count);
            if (n == 0) continue;
            var points = plot.Add.ScatterPoints(s.X.Take(n).ToArray(), s.Y.Take(n).ToArray());
            points.LegendText = s.Name;
            points.MarkerSize = 8;
            points.Color = styles[i].Colour;
            points.MarkerShape = Shapes[styles[i].Member % Shapes.Length];
        }
        bool legend = series.Count > 1;
        // One legend column: tall enough for every entry (ScottPlot wraps a legend that does not fit into a second column).
        Finish(plot, path, title, xLabel, yLabel, showLegend: legend, width: legend ? Width + LegendWidth : Width,
            height: legend ? Math.Max(Height, RowMargin + (LegendRowHeight * series.Count)) : Height, legendOutside: true);
    }

    private static readonly MarkerShape[] Shapes =
        [MarkerShape.FilledCircle, MarkerShape.FilledSquare, MarkerShape.FilledTriangleUp, MarkerShape.FilledDiamond, MarkerShape.FilledTriangleDown, MarkerShape.Cross];

    /// <summary>A colour per distinct group (in order of first appearance) and each item's index within its group.</summary>
    private static List<(Color Colour, int Member)> GroupColours(List<string> groups)
    {
        var palette = new ScottPlot.Palettes.Category10();
        var order = new Dictionary<string, int>(StringComparer.Ordinal);
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        var result = new List<(Color, int)>(groups.Count);
        foreach (string g in groups)
        {
            if (!order.TryGetValue(g, out int index)) order[g] = index = order.Count;
            int member = seen.GetValueOrDefault(g);
            seen[g] = member + 1;
            result.Add((palette.GetColor(index), member));
        }
        return result;
    }

    private static void AddMarkers(Plot plot, IReadOnlyList<ChartMarker>? markers)
    {
        if (markers is null) return;
        foreach (var m in markers)
        {
            var line = plot.Add.VerticalLine(m.X);
            line.LegendText = m.Label;
            line.LineWidth = 2;
            line.LinePattern = LinePattern.Dashed;
        }
    }

    private static void Finish(Plot plot, string path, string title, string xLabel, string yLabel, bool showLegend,
        int width = Width, int height = Height, bool legendOutside = false)
    {
        plot.Title(title);
        plot.XLabel(xLabel);
        plot.YLabel(yLabel);
        if (showLegend && legendOutside) plot.ShowLegend(Edge.Right);
        else if (showLegend) plot.ShowLegend(Alignment.UpperRight);
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string tmp = full + $".{Environment.ProcessId}.tmp.png";
        plot.SavePng(tmp, width, height);
        File.Move(tmp, full, overwrite: true);
    }
}
