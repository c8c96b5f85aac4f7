using System.Globalization;
using System.Text.Json;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Splitter.Quality;
using PrefPipe.Splitter.Rules;

namespace PrefPipe.Splitter;

/// <summary>What the splitter wrote.</summary>
/// <param name="Easy">Easy pairs (the dpo stage's data).</param>
/// <param name="Difficult">Difficult pairs (the ppo stage's prompts).</param>
/// <param name="Dropped">Dropped pairs with reasons.</param>
/// <param name="Report">The data-quality report.</param>
/// <param name="PairsIn">Pairs read.</param>
public sealed record SplitResult(ArtifactInfo Easy, ArtifactInfo Difficult, ArtifactInfo Dropped, QualityReport Report, long PairsIn);

/// <summary>
/// Stage 3: preferences → easy / difficult by reward gap, plus a data-quality report (JSON, Markdown table, gap
/// histogram PNG). Every pair lands in exactly one of easy, difficult and dropped; easy and difficult keep the TRL shape
/// of the preferences (standard or conversational, <see cref="PreferenceArtifacts"/>).
/// </summary>
public sealed class SplitterStage
{
    private static readonly JsonSerializerOptions IndentedJson = new() { WriteIndented = true };

    private readonly SplitterOptions _options;

    /// <summary>Creates the stage; the options are checked here, so a bad value fails before any input is read.</summary>
    /// <param name="options">The stage's options.</param>
    /// <exception cref="Microsoft.Extensions.Options.OptionsValidationException">An option is invalid; the message names each.</exception>
    public SplitterStage(SplitterOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
    }

    /// <summary>Runs the stage. The report's PNG is written to <paramref name="reportDirectory"/> (a local folder) when given.</summary>
    public async Task<SplitResult> RunAsync(IArtifactStore store, string preferencesPath, string prefix, string? reportDirectory = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        var pairs = await PreferenceArtifacts.ReadAllAsync(store, preferencesPath, cancellationToken).ConfigureAwait(false);
        // Empty work is an error, found before anything is written (the report's statistics of nothing are not numbers).
        if (pairs.Count == 0)
            throw new InvalidDataException($"{store.UriOf(preferencesPath)}: 0 preference pairs; nothing to split (did rank pair any candidates? see its unpaired artifact)");
        var facts = pairs.Select(p => new PairFacts(p.PromptId, p.RewardGap, p.JudgeAgrees, p.Chosen.Length, p.Rejected.Length)).ToList();
        var (decisions, threshold) = GapSplitter.Split(facts, _options);
        var report = QualityReport.Build(facts, decisions, _options, threshold);

        var easy = new List<PreferenceRow>();
        var difficult = new List<PreferenceRow>();
        var dropped = new List<RejectRow>();
        foreach (var d in decisions)
        {
            var p = pairs[d.Index];
            if (d.Flipped)
                p = p with { Chosen = p.Rejected, Rejected = p.Chosen, ScoreChosen = p.ScoreRejected, ScoreRejected = p.ScoreChosen,
                    RewardGap = -p.RewardGap, ChosenIndex = p.RejectedIndex, RejectedIndex = p.ChosenIndex,
                    ChosenInputIds = p.RejectedInputIds, RejectedInputIds = p.ChosenInputIds, JudgeAgrees = !p.JudgeAgrees, Method = p.Method + "+flipped" };
            switch (d.Set)
            {
                case SplitSet.Easy: easy.Add(p); break;
                case SplitSet.Difficult: difficult.Add(p); break;
                default: dropped.Add(new RejectRow { Stage = "split", Source = preferencesPath, Row = d.Index, Key = p.PromptId, Reason = d.Reason }); break;
            }
        }
        var meta = new Dictionary<string, string> { ["rule"] = report.Rule, ["threshold"] = threshold.ToString("R", CultureInfo.InvariantCulture) };
        var result = new SplitResult(
            await PreferenceArtifacts.WriteAsync(store, $"{prefix}/easy.parquet", easy, meta, cancellationToken).ConfigureAwait(false),
            await PreferenceArtifacts.WriteAsync(store, $"{prefix}/difficult.parquet", difficult, meta, cancellationToken).ConfigureAwait(false),
            await ParquetArtifacts.WriteAsync(store, $"{prefix}/dropped.parquet", dropped, meta, cancellationToken).ConfigureAwait(false),
            report, pairs.Count);

        // The report: JSON for machines, Markdown for people, committed next to the artifacts; the PNG beside the local report.
        await store.WriteTextAsync($"{prefix}/report.json", JsonSerializer.Serialize(report, IndentedJson), cancellationToken).ConfigureAwait(false);
        await store.WriteTextAsync($"{prefix}/report.md", "# Split report\n\n" + report.ToTable().ToMarkdown(), cancellationToken).ConfigureAwait(false);
        string png = Path.Combine(Path.GetTempPath(), $"prefpipe-gaps-{Guid.NewGuid():N}.png");
        try
        {
            QualityReport.WriteGapHistogram(png, decisions, threshold);
            await store.CommitAsync($"{prefix}/gap_histogram.png", png, cancellationToken).ConfigureAwait(false);
            if (reportDirectory is not null)
            {
                Directory.CreateDirectory(reportDirectory);
                File.Copy(png, Path.Combine(reportDirectory, "gap_histogram.png"), overwrite: true);
            }
        }
        finally
        {
            File.Delete(png);
        }
        return result;
    }
}
