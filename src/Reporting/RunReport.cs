namespace PrefPipe.Reporting;

/// <summary>One row of a run's stage table.</summary>
/// <param name="Name">Stage name (ingest, rank, …).</param>
/// <param name="Status">pending, running, completed, failed, cancelled or skipped.</param>
/// <param name="RowsIn">Rows the stage read.</param>
/// <param name="RowsOut">Rows it wrote.</param>
/// <param name="RowsRejected">Rows it set aside (its rejects artifact).</param>
/// <param name="Seconds">Wall time of its last attempt.</param>
/// <param name="Notes">The figures a reader looks for first (the console table's notes).</param>
/// <param name="Error">Why it failed, or null.</param>
/// <param name="Accounting">How rows in relate to rows out and rejected, or null.</param>
public sealed record ReportStage(string Name, string Status, long RowsIn, long RowsOut, long RowsRejected, double Seconds, string Notes, string? Error, string? Accounting);

/// <summary>An artifact a stage read or wrote, as run.json records it.</summary>
/// <param name="Stage">The stage.</param>
/// <param name="Direction">"in" or "out".</param>
/// <param name="Name">Artifact name (candidates, preferences, model, …).</param>
/// <param name="Uri">Where it is.</param>
/// <param name="Rows">Rows (0 for models and input files).</param>
/// <param name="Sha256">Content hash.</param>
public sealed record ReportArtifact(string Stage, string Direction, string Name, string Uri, long Rows, string Sha256);

/// <summary>A chart the run wrote, embedded in the page.</summary>
/// <param name="Path">Its path in the run (e.g. <c>split/gap_histogram.png</c>): the caption.</param>
/// <param name="Png">The PNG bytes.</param>
public sealed record ReportChart(string Path, ReadOnlyMemory<byte> Png);

/// <summary>One judge call about a pair's prompt.</summary>
/// <param name="A">Candidate shown first.</param>
/// <param name="B">Candidate shown second.</param>
/// <param name="Verdict">a, b or tie.</param>
/// <param name="Judge">Judge name.</param>
public sealed record ReportVerdict(int A, int B, string Verdict, string Judge);

/// <summary>A preference pair shown as a sample.</summary>
/// <param name="Set">Where it came from (easy, difficult, preferences).</param>
/// <param name="PromptId">The prompt's id.</param>
/// <param name="Prompt">The prompt text.</param>
/// <param name="Chosen">The preferred response.</param>
/// <param name="Rejected">The dispreferred response.</param>
/// <param name="ChosenIndex">Candidate index of the chosen response.</param>
/// <param name="RejectedIndex">Candidate index of the rejected response.</param>
/// <param name="ScoreChosen">Reward of the chosen response.</param>
/// <param name="ScoreRejected">Reward of the rejected response.</param>
/// <param name="JudgeAgrees">Whether the judge's ranking agrees with the reward model.</param>
/// <param name="Verdicts">The judge calls made for this prompt.</param>
public sealed record ReportPair(string Set, string PromptId, string Prompt, string Chosen, string Rejected, int ChosenIndex, int RejectedIndex,
    double ScoreChosen, double ScoreRejected, bool JudgeAgrees, IReadOnlyList<ReportVerdict> Verdicts);

/// <summary>A policy's response to a held-out prompt.</summary>
/// <param name="Index">Sample index.</param>
/// <param name="Response">The response.</param>
/// <param name="Reward">Its reward.</param>
/// <param name="Kl">Its KL estimate against the start policy (0 for the start policy).</param>
public sealed record ReportSample(int Index, string Response, double Reward, double Kl);

/// <summary>A held-out prompt with the start and final policies' samples, side by side.</summary>
/// <param name="PromptId">The prompt's id.</param>
/// <param name="Prompt">The prompt text, or null when the held-out file could not be read.</param>
/// <param name="Start">The start policy's samples.</param>
/// <param name="Final">The final policy's samples.</param>
public sealed record ReportHeldOut(string PromptId, string? Prompt, IReadOnlyList<ReportSample> Start, IReadOnlyList<ReportSample> Final);

/// <summary>Everything <c>report.html</c> shows about one run; built from run.json and the run's artifacts.</summary>
public sealed record RunReport
{
    /// <summary>The run id.</summary>
    public string RunId { get; init; } = "";

    /// <summary>The pipeline's name.</summary>
    public string Pipeline { get; init; } = "";

    /// <summary>The run's status (completed, failed, …).</summary>
    public string Status { get; init; } = "";

    /// <summary>Lineage and headline figures as label/value rows (created, config hash, code version, plan, win rate, …).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Facts { get; init; } = [];

    /// <summary>The stage that failed or was cancelled, or null.</summary>
    public string? FailedStage { get; init; }

    /// <summary>Why it failed (run.json's error), or null.</summary>
    public string? Failure { get; init; }

    /// <summary>The stage table.</summary>
    public IReadOnlyList<ReportStage> Stages { get; init; } = [];

    /// <summary>Every stage's input and output artifacts.</summary>
    public IReadOnlyList<ReportArtifact> Artifacts { get; init; } = [];

    /// <summary>The split report (split/report.json) as measure/value rows; empty when the run has none.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> SplitReport { get; init; } = [];

    /// <summary>Every chart the run wrote.</summary>
    public IReadOnlyList<ReportChart> Charts { get; init; } = [];

    /// <summary>Sample preference pairs.</summary>
    public IReadOnlyList<ReportPair> Pairs { get; init; } = [];

    /// <summary>Held-out prompts with the start and final policies' samples.</summary>
    public IReadOnlyList<ReportHeldOut> HeldOut { get; init; } = [];
}
