using System.Globalization;
using System.Text.Json;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Storage;
using Spectre.Console;

namespace PrefPipe.Host.Commands;

/// <summary>How the data-stage commands report: a table, or one JSON object with --json; errors as exit codes.</summary>
internal static partial class StageCommands
{
    private sealed record StageSummary(string Stage, long RowsIn, IReadOnlyList<(string Name, ArtifactInfo Info)> Artifacts, IReadOnlyList<(string Name, object Value)> Facts);

    private static async Task<int> Execute(string stage, bool json, IAnsiConsole? console, Func<Task<StageSummary>> action, CancellationToken cancellationToken)
    {
        StageSummary summary;
        var started = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            summary = await action().ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            Console.Error.WriteLine($"prefpipe {stage}: cancelled; committed batches are kept and a rerun resumes");
            return Cli.ExitCodes.Failed;
        }
        catch (Exception e) when (CliErrors.IsExpected(e))
        {
            return CliErrors.Report(stage, e);
        }
        var output = console ?? AnsiConsole.Console;
        if (json)
        {
            var writer = output.Profile.Out.Writer;
            writer.WriteLine(ToJson(summary, started.Elapsed));
            writer.Flush();
        }
        else
        {
            Render(output, summary, started.Elapsed);
        }
        return Cli.ExitCodes.Ok;
    }

    private static string ToJson(StageSummary summary, TimeSpan elapsed)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, JsonOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("stage", summary.Stage);
            writer.WriteNumber("rows_in", summary.RowsIn);
            writer.WriteStartObject("artifacts");
            foreach (var (name, info) in summary.Artifacts)
            {
                writer.WriteStartObject(name);
                writer.WriteString("uri", info.Uri);
                writer.WriteNumber("rows", info.Rows);
                writer.WriteString("sha256", info.Sha256);
                writer.WriteEndObject();
            }
            writer.WriteEndObject();
            foreach (var (name, value) in summary.Facts)
            {
                string key = name.Replace(' ', '_');
                if (value is string s) writer.WriteString(key, s);
                else writer.WriteNumber(key, Convert.ToInt64(value, CultureInfo.InvariantCulture));
            }
            writer.WriteNumber("seconds", Math.Round(elapsed.TotalSeconds, 3));
            writer.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    private static void Render(IAnsiConsole console, StageSummary summary, TimeSpan elapsed)
    {
        var inv = CultureInfo.InvariantCulture;
        var table = new Table().Border(TableBorder.Rounded)
            .Title($"{summary.Stage}: {summary.RowsIn.ToString("N0", inv)} {(summary.Stage == "split" ? "pairs" : summary.Stage == "rank" ? "prompts" : "rows")} in, {elapsed.TotalSeconds.ToString("F1", inv)} s")
            .AddColumn("artifact").AddColumn(new TableColumn("rows").RightAligned()).AddColumn("sha256").AddColumn("uri");
        foreach (var (name, info) in summary.Artifacts)
            table.AddRow(Markup.Escape(name), info.Rows.ToString("N0", inv), info.Sha256[..Math.Min(12, info.Sha256.Length)], Markup.Escape(info.Uri));
        console.Write(table);
        foreach (var (name, value) in summary.Facts)
            console.MarkupLine($"{Markup.Escape(name)}: {Markup.Escape(Convert.ToString(value, inv) ?? "")}");
    }

    /// <summary>Writes and lists go to the output store; one input path reads from the store that holds it.</summary>
    private sealed class InputOverlayStore(IArtifactStore output, string inputPath, IArtifactStore input) : IArtifactStore
    {
        public string Location => output.Location;

        public string UriOf(string path) => path == inputPath ? input.UriOf(path) : output.UriOf(path);

        public ValueTask<bool> ExistsAsync(string path, CancellationToken cancellationToken = default) =>
            path == inputPath ? input.ExistsAsync(path, cancellationToken) : output.ExistsAsync(path, cancellationToken);

        public ValueTask<Stream> OpenReadAsync(string path, CancellationToken cancellationToken = default) =>
            path == inputPath ? input.OpenReadAsync(path, cancellationToken) : output.OpenReadAsync(path, cancellationToken);

        public ValueTask CommitAsync(string path, string localFile, CancellationToken cancellationToken = default) =>
            output.CommitAsync(path, localFile, cancellationToken);

        public ValueTask<bool> TryCreateAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken = default) =>
            output.TryCreateAsync(path, content, cancellationToken);

        public IAsyncEnumerable<string> ListAsync(string prefix, CancellationToken cancellationToken = default) => output.ListAsync(prefix, cancellationToken);

        public ValueTask DeleteAsync(string path, CancellationToken cancellationToken = default) => output.DeleteAsync(path, cancellationToken);
    }
}
