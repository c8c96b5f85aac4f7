using System.Globalization;
using System.Text;

namespace PrefPipe.Reporting;

/// <summary>A small two-or-more-column summary that renders as Markdown (reports) and plain aligned text (logs).</summary>
public sealed class SummaryTable
{
    private readonly List<string[]> _rows = [];

    /// <summary>Creates a table with the given column headers.</summary>
    public SummaryTable(params string[] headers)
    {
        ArgumentNullException.ThrowIfNull(headers);
        Headers = headers;
    }

    /// <summary>Column headers.</summary>
    public IReadOnlyList<string> Headers { get; }

    /// <summary>Rows added so far.</summary>
    public IReadOnlyList<IReadOnlyList<string>> Rows => _rows;

    /// <summary>Adds a row; numbers are formatted invariantly (4 significant digits for non-integers).</summary>
    public SummaryTable Add(params object?[] cells)
    {
        ArgumentNullException.ThrowIfNull(cells);
        if (cells.Length != Headers.Count)
            throw new ArgumentException($"row has {cells.Length} cells; the table has {Headers.Count} columns", nameof(cells));
        _rows.Add(cells.Select(Format).ToArray());
        return this;
    }

    /// <summary>GitHub-flavoured Markdown.</summary>
    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.Append("| ").AppendJoin(" | ", Headers).AppendLine(" |");
        sb.Append('|').AppendJoin('|', Headers.Select(_ => " --- ")).AppendLine("|");
        foreach (var r in _rows) sb.Append("| ").AppendJoin(" | ", r).AppendLine(" |");
        return sb.ToString();
    }

    /// <summary>Aligned plain text.</summary>
    public override string ToString()
    {
        int[] widths = Headers.Select((h, i) => Math.Max(h.Length, _rows.Count == 0 ? 0 : _rows.Max(r => r[i].Length))).ToArray();
        var sb = new StringBuilder();
        sb.AppendJoin("  ", Headers.Select((h, i) => h.PadRight(widths[i]))).AppendLine();
        foreach (var r in _rows) sb.AppendJoin("  ", r.Select((c, i) => c.PadRight(widths[i]))).AppendLine();
        return sb.ToString();
    }

    private static string Format(object? value) => value switch
    {
        null => "",
        double d when double.IsNaN(d) => "n/a",
        double d when Math.Abs(d - Math.Round(d)) < 1e-12 && Math.Abs(d) < 1e15 => d.ToString("0", CultureInfo.InvariantCulture),
        double d => d.ToString("G4", CultureInfo.InvariantCulture),
        float f => Format((double)f),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}
