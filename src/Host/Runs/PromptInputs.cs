using System.Runtime.CompilerServices;
using System.Text.Json;

namespace PrefPipe.Host.Runs;

/// <summary>Reads prompt files (JSON lines or Parquet with a prompt or messages column) for the ingest stage: local
/// files here, blob URIs (<c>az://…</c>, blob URLs) through <see cref="PrefPipe.Artifacts.Inputs.PromptSource"/>.</summary>
internal static class PromptInputs
{
    public static async IAsyncEnumerable<PrefPipe.Ingest.PromptInput> ReadAsync(
        string path, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (PrefPipe.Artifacts.Storage.ArtifactStores.IsBlobLocation(path))
        {
            await foreach (var p in PrefPipe.Artifacts.Inputs.PromptSource.ReadAsync(path, cancellationToken: cancellationToken).ConfigureAwait(false))
                yield return new(p.Row, p.Prompt, p.Messages?.Select(m => (m.Role, m.Content)).ToList(), p.Raw ?? p.Extra, p.RejectReason);
            yield break;
        }
        if (path.EndsWith(".parquet", StringComparison.OrdinalIgnoreCase))
        {
            var store = new PrefPipe.Artifacts.Storage.LocalArtifactStore(Path.GetDirectoryName(Path.GetFullPath(path))!);
            long row = 0;
            await foreach (var r in PrefPipe.Artifacts.ParquetArtifacts.ReadAsync<PrefPipe.Artifacts.Rows.PromptRow>(store, Path.GetFileName(path), cancellationToken).ConfigureAwait(false))
                yield return new(row++, r.Prompt, r.Messages?.Select(m => (m.Role, m.Content)).ToList(), null);
            yield break;
        }
        long line = 0;
        using var reader = new StreamReader(path);
        while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } text)
        {
            long row = line++;
            if (string.IsNullOrWhiteSpace(text)) continue;
            string? prompt = null;
            List<(string, string)>? messages = null;
            string? error = null;
            try
            {
                using var doc = JsonDocument.Parse(text);
                var root = doc.RootElement;
                if (root.ValueKind != JsonValueKind.Object) error = "not a JSON object";
                else if (root.TryGetProperty("prompt", out var p) && p.ValueKind == JsonValueKind.String) prompt = p.GetString();
                else if (root.TryGetProperty("messages", out var m) && m.ValueKind == JsonValueKind.Array)
                    messages = m.EnumerateArray().Select(x => (x.GetProperty("role").GetString() ?? "", x.GetProperty("content").GetString() ?? "")).ToList();
                else error = "no 'prompt' string or 'messages' list";
            }
            catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                error = $"invalid JSON: {ex.Message}";
            }
            yield return new(row, prompt, messages, text, error is null ? null : $"line {row + 1}: {error}");
        }
    }
}
