using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Inputs;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Text.Tokenizers;
using PrefPipe.Trainer.Stages;

namespace PrefPipe.Trainer.Data;

/// <summary>Prompts read for rollouts or evaluation, and the rows that could not be used.</summary>
/// <param name="Prompts">Usable prompts, in input order.</param>
/// <param name="Rejects">Rows refused, with reasons naming the row.</param>
/// <param name="RowsIn">Rows read.</param>
public sealed record TrainingPromptSet(IReadOnlyList<TrainingPrompt> Prompts, IReadOnlyList<RejectRow> Rejects, long RowsIn);

/// <summary>
/// Reads the prompts a training or evaluation unit samples from, whatever carries them: our prompts artifact (with the
/// ids ingest generated from), preference pairs (the difficult set: their prompt ids), or a prompt file (JSON lines or
/// Parquet with a prompt or messages column, encoded as ingest encodes prompts).
/// </summary>
public static class TrainingPrompts
{
    /// <summary>Reads <paramref name="file"/>; <paramref name="idPrefix"/> + row names rows of prompt files without an id column
    /// (<paramref name="sourceOptions"/> says which columns are ids).</summary>
    public static async Task<TrainingPromptSet> ReadAsync(StoreFile file, PromptEncoder encoder, string stage, string idPrefix = "row-",
        PromptSourceOptions? sourceOptions = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(encoder);
        var columns = await ParquetArtifacts.ColumnsAsync(file.Store, file.Path, cancellationToken).ConfigureAwait(false) ?? new HashSet<string>();
        var prompts = new List<TrainingPrompt>();
        var rejects = new List<RejectRow>();
        long rowsIn = 0;
        if (columns.Contains("chosen"))
        {
            // Preference pairs: the prompt of each, with the ids its candidates were generated from.
            await foreach (var input in PreferenceSource.ReadAsync(file.Store, file.Path, cancellationToken).ConfigureAwait(false))
            {
                rowsIn++;
                if (input.Pair is not { } row) { rejects.Add(new RejectRow { Stage = stage, Source = file.Uri, Row = input.Row, Reason = input.RejectReason ?? "unreadable row", Raw = input.Raw }); continue; }
                if (row.PromptId.Length == 0) row = row with { PromptId = $"{idPrefix}{input.Row}" };
                try
                {
                    prompts.Add(TrainingPrompt.From(row, encoder));
                }
                catch (InvalidDataException ex)
                {
                    // A conversation this policy cannot render (no chat template, a template error): this row's problem, as in the dpo unit.
                    rejects.Add(new RejectRow { Stage = stage, Source = file.Uri, Row = input.Row, Key = row.PromptId, Reason = $"row {input.Row}: {ex.Message}" });
                }
            }
        }
        else if (columns.Contains("prompt_input_ids"))
        {
            // Our prompts artifact: validated by ingest, with the ids generation used.
            foreach (var row in await ParquetArtifacts.ReadAllAsync<PromptRow>(file.Store, file.Path, cancellationToken).ConfigureAwait(false))
            {
                rowsIn++;
                prompts.Add(TrainingPrompt.From(row, encoder));
            }
        }
        else
        {
            await foreach (var p in PromptSource.ReadAsync(file.Store, file.Path, sourceOptions, cancellationToken).ConfigureAwait(false))
            {
                rowsIn++;
                if (p.IsRejected) { rejects.Add(p.ToRejectRow(stage, file.Uri)); continue; }
                if (string.IsNullOrWhiteSpace(p.Prompt) && p.Messages is not { Count: > 0 })
                {
                    rejects.Add(new RejectRow { Stage = stage, Source = file.Uri, Row = p.Row, Key = p.Id, Reason = $"row {p.Row}: empty prompt; expected text or messages", Raw = p.Extra });
                    continue;
                }
                try
                {
                    prompts.Add(TrainingPrompt.Encode(p.Id ?? $"{idPrefix}{p.Row}", p.Prompt, p.Messages?.Select(m => new Turn(m.Role, m.Content)).ToList(), encoder));
                }
                catch (InvalidDataException ex)
                {
                    rejects.Add(new RejectRow { Stage = stage, Source = file.Uri, Row = p.Row, Key = p.Id, Reason = $"row {p.Row}: {ex.Message}", Raw = p.Extra });
                }
            }
        }
        return new TrainingPromptSet(prompts, rejects, rowsIn);
    }
}
