using System.Text.Json.Serialization;

namespace PrefPipe.Artifacts.Rows;

// Artifact rows: sealed records with init-only properties (Parquet.Net cannot build types with `required` members) and
// explicit column names that follow the ecosystem (TRL, Hugging Face datasets): prompt, chosen, rejected,
// score_chosen, score_rejected, messages as list<struct<role, content>>.

/// <summary>One chat turn, stored as struct&lt;role: string, content: string&gt;.</summary>
public sealed record ChatTurnRow
{
    /// <summary>system, user or assistant.</summary>
    [JsonPropertyName("role")] public string Role { get; init; } = "";

    /// <summary>The text.</summary>
    [JsonPropertyName("content")] public string Content { get; init; } = "";
}

/// <summary>A validated prompt (ingest output, before generation).</summary>
public sealed record PromptRow
{
    /// <summary>Schema version of this artifact kind.</summary>
    public const int SchemaVersion = 2; // 2: token id columns

    /// <summary>Stable id from the normalised content.</summary>
    [JsonPropertyName("prompt_id")] public string PromptId { get; init; } = "";

    /// <summary>The prompt as plain text (TRL standard), or null for conversations.</summary>
    [JsonPropertyName("prompt")] public string? Prompt { get; init; }

    /// <summary>The conversation (TRL conversational), or null.</summary>
    [JsonPropertyName("messages")] public List<ChatTurnRow>? Messages { get; init; }

    /// <summary>0-based row in the input file.</summary>
    [JsonPropertyName("source_row")] public long SourceRow { get; init; }

    /// <summary>
    /// The input row as read, kept, not interpreted (<see cref="PrefPipe.Artifacts.Inputs.PromptInput.Raw"/>): a JSON
    /// line's text as it is in the file, a Parquet row as a JSON object of its columns.
    /// </summary>
    [JsonPropertyName("extra")] public string? Extra { get; init; }

    /// <summary>The prompt's token ids as the policy sees them (templated, truncated): what generation is fed.</summary>
    [JsonPropertyName("prompt_input_ids")] public List<int>? PromptInputIds { get; init; }
}

/// <summary>One generated candidate response (ingest output).</summary>
public sealed record CandidateRow
{
    /// <summary>Schema version.</summary>
    public const int SchemaVersion = 3; // 2: token id columns; 3: logprob_sum nullable (v2 files still read: LegacyRows)

    /// <summary>The prompt's id.</summary>
    [JsonPropertyName("prompt_id")] public string PromptId { get; init; } = "";

    /// <summary>The prompt text the model saw (templated when the model has a chat template).</summary>
    [JsonPropertyName("prompt")] public string Prompt { get; init; } = "";

    /// <summary>Index of this candidate among the prompt's K.</summary>
    [JsonPropertyName("candidate_index")] public int CandidateIndex { get; init; }

    /// <summary>The generated text (special tokens removed).</summary>
    [JsonPropertyName("response")] public string Response { get; init; } = "";

    /// <summary>Generated tokens (an ending EOS included).</summary>
    [JsonPropertyName("token_count")] public int TokenCount { get; init; }

    /// <summary>eos, length or stop.</summary>
    [JsonPropertyName("finish_reason")] public string FinishReason { get; init; } = "";

    /// <summary>The sample's seed (derived from the run seed, prompt id and index).</summary>
    [JsonPropertyName("seed")] public long Seed { get; init; }

    /// <summary>
    /// Σ log p of the generated tokens under the policy (temperature 1): of <see cref="ResponseInputIds"/>. Null when the
    /// generator returned no log-probs (an external server without them, or with <c>logprobs: false</c>); the local
    /// engine always writes it.
    /// </summary>
    [JsonPropertyName("logprob_sum")] public double? LogprobSum { get; init; }

    /// <summary>The prompt ids generation was fed.</summary>
    [JsonPropertyName("prompt_input_ids")] public List<int>? PromptInputIds { get; init; }

    /// <summary>The generated ids of <see cref="Response"/> (an ending EOS included): what training scores after the prompt ids.</summary>
    [JsonPropertyName("response_input_ids")] public List<int>? ResponseInputIds { get; init; }
}

/// <summary>A row that a stage could not use, and why (every input row ends in an output or here).</summary>
public sealed record RejectRow
{
    /// <summary>Schema version.</summary>
    public const int SchemaVersion = 1;

    /// <summary>The stage that rejected it.</summary>
    [JsonPropertyName("stage")] public string Stage { get; init; } = "";

    /// <summary>The input it came from (file or artifact).</summary>
    [JsonPropertyName("source")] public string Source { get; init; } = "";

    /// <summary>0-based row in that input.</summary>
    [JsonPropertyName("row")] public long Row { get; init; }

    /// <summary>The row's key (prompt_id) when known.</summary>
    [JsonPropertyName("key")] public string? Key { get; init; }

    /// <summary>What was wrong and what was expected.</summary>
    [JsonPropertyName("reason")] public string Reason { get; init; } = "";

    /// <summary>The row as JSON, for inspection.</summary>
    [JsonPropertyName("raw")] public string? Raw { get; init; }
}

/// <summary>A candidate with its reward-model score (ranking, first step).</summary>
public sealed record ScoredCandidateRow
{
    /// <summary>Schema version.</summary>
    public const int SchemaVersion = 1;

    /// <summary>The prompt's id.</summary>
    [JsonPropertyName("prompt_id")] public string PromptId { get; init; } = "";

    /// <summary>Candidate index.</summary>
    [JsonPropertyName("candidate_index")] public int CandidateIndex { get; init; }

    /// <summary>Reward-model score; null when the candidate could not be scored (see reason).</summary>
    [JsonPropertyName("reward")] public double? Reward { get; init; }

    /// <summary>Why there is no score, or null.</summary>
    [JsonPropertyName("reason")] public string? Reason { get; init; }
}

/// <summary>One judge call (ranking).</summary>
public sealed record ComparisonRow
{
    /// <summary>Schema version.</summary>
    public const int SchemaVersion = 1;

    /// <summary>The prompt's id.</summary>
    [JsonPropertyName("prompt_id")] public string PromptId { get; init; } = "";

    /// <summary>Candidate shown first.</summary>
    [JsonPropertyName("a")] public int A { get; init; }

    /// <summary>Candidate shown second.</summary>
    [JsonPropertyName("b")] public int B { get; init; }

    /// <summary>"ab" when the lower index was shown first, else "ba".</summary>
    [JsonPropertyName("order")] public string Order { get; init; } = "";

    /// <summary>a, b or tie, about the pair as shown.</summary>
    [JsonPropertyName("verdict")] public string Verdict { get; init; } = "";

    /// <summary>Judge name.</summary>
    [JsonPropertyName("judge")] public string Judge { get; init; } = "";

    /// <summary>Call latency in milliseconds.</summary>
    [JsonPropertyName("latency_ms")] public double LatencyMs { get; init; }

    /// <summary>Raw judge output, if any.</summary>
    [JsonPropertyName("raw")] public string? Raw { get; init; }
}

/// <summary>
/// A preference pair in TRL's standard format plus our own columns (ranking output, splitter input/output). Pairs of
/// conversational prompts are written as <see cref="ConversationalPreferenceRow"/> (<see cref="PrefPipe.Artifacts.PreferenceArtifacts"/>).
/// </summary>
public sealed record PreferenceRow
{
    /// <summary>Schema version.</summary>
    public const int SchemaVersion = 2; // 2: token id columns

    /// <summary>The prompt's id.</summary>
    [JsonPropertyName("prompt_id")] public string PromptId { get; init; } = "";

    /// <summary>
    /// The prompt text as the input gave it (never the chat-template rendering: <see cref="PromptInputIds"/> are what the
    /// policy saw); for a conversation, its last user turn. In files from elsewhere without ids, TRL's meaning: the text
    /// the model is given.
    /// </summary>
    [JsonPropertyName("prompt")] public string Prompt { get; init; } = "";

    /// <summary>The preferred response.</summary>
    [JsonPropertyName("chosen")] public string Chosen { get; init; } = "";

    /// <summary>The dispreferred response.</summary>
    [JsonPropertyName("rejected")] public string Rejected { get; init; } = "";

    /// <summary>Reward of the chosen response.</summary>
    [JsonPropertyName("score_chosen")] public double ScoreChosen { get; init; }

    /// <summary>Reward of the rejected response.</summary>
    [JsonPropertyName("score_rejected")] public double ScoreRejected { get; init; }

    /// <summary>score_chosen − score_rejected.</summary>
    [JsonPropertyName("reward_gap")] public double RewardGap { get; init; }

    /// <summary>Whether the judge's ranking and the reward model agree on the order.</summary>
    [JsonPropertyName("judge_agrees")] public bool JudgeAgrees { get; init; }

    /// <summary>How the pair was made, e.g. "ipr:reward" (iterative pairwise ranking with the reward judge) or "pointwise:reward" (best and worst by score).</summary>
    [JsonPropertyName("method")] public string Method { get; init; } = "";

    /// <summary>Candidate index of the chosen response.</summary>
    [JsonPropertyName("chosen_index")] public int ChosenIndex { get; init; }

    /// <summary>Candidate index of the rejected response.</summary>
    [JsonPropertyName("rejected_index")] public int RejectedIndex { get; init; }

    /// <summary>
    /// The conversation of the prompt when the input was conversational, else null. Always null in files rank writes:
    /// those pairs are stored in TRL's conversational shape (<see cref="ConversationalPreferenceRow"/>).
    /// </summary>
    [JsonPropertyName("prompt_messages")] public List<ChatTurnRow>? PromptMessages { get; init; }

    /// <summary>The prompt ids the candidates were generated from (TRL's tokenized-DPO column name), or null when unknown.</summary>
    [JsonPropertyName("prompt_input_ids")] public List<int>? PromptInputIds { get; init; }

    /// <summary>The chosen response's generated ids (ending EOS included), or null when unknown.</summary>
    [JsonPropertyName("chosen_input_ids")] public List<int>? ChosenInputIds { get; init; }

    /// <summary>The rejected response's generated ids (ending EOS included), or null when unknown.</summary>
    [JsonPropertyName("rejected_input_ids")] public List<int>? RejectedInputIds { get; init; }
}

/// <summary>
/// A preference pair in TRL's conversational format plus our own columns (what rank writes when the prompts were
/// conversations): <c>prompt</c> is the conversation, <c>chosen</c> and <c>rejected</c> each hold the one assistant turn.
/// TRL and Hugging Face <c>datasets</c> read it as it is; <see cref="PrefPipe.Artifacts.PreferenceArtifacts"/> reads it back as
/// <see cref="PreferenceRow"/> with <see cref="PreferenceRow.PromptMessages"/> filled.
/// </summary>
public sealed record ConversationalPreferenceRow
{
    /// <summary>Schema version.</summary>
    public const int SchemaVersion = 1;

    /// <summary>The prompt's id.</summary>
    [JsonPropertyName("prompt_id")] public string PromptId { get; init; } = "";

    /// <summary>The prompt conversation, as the input gave it (no template, no system prompt added).</summary>
    [JsonPropertyName("prompt")] public List<ChatTurnRow>? Prompt { get; init; }

    /// <summary>The preferred completion: one assistant turn.</summary>
    [JsonPropertyName("chosen")] public List<ChatTurnRow>? Chosen { get; init; }

    /// <summary>The dispreferred completion: one assistant turn.</summary>
    [JsonPropertyName("rejected")] public List<ChatTurnRow>? Rejected { get; init; }

    /// <summary>Reward of the chosen response.</summary>
    [JsonPropertyName("score_chosen")] public double ScoreChosen { get; init; }

    /// <summary>Reward of the rejected response.</summary>
    [JsonPropertyName("score_rejected")] public double ScoreRejected { get; init; }

    /// <summary>score_chosen − score_rejected.</summary>
    [JsonPropertyName("reward_gap")] public double RewardGap { get; init; }

    /// <summary>Whether the judge's ranking and the reward model agree on the order.</summary>
    [JsonPropertyName("judge_agrees")] public bool JudgeAgrees { get; init; }

    /// <summary>How the pair was made, e.g. "ipr:reward" (iterative pairwise ranking with the reward judge) or "pointwise:reward" (best and worst by score).</summary>
    [JsonPropertyName("method")] public string Method { get; init; } = "";

    /// <summary>Candidate index of the chosen response.</summary>
    [JsonPropertyName("chosen_index")] public int ChosenIndex { get; init; }

    /// <summary>Candidate index of the rejected response.</summary>
    [JsonPropertyName("rejected_index")] public int RejectedIndex { get; init; }

    /// <summary>The prompt ids the candidates were generated from (the templated conversation), or null when unknown.</summary>
    [JsonPropertyName("prompt_input_ids")] public List<int>? PromptInputIds { get; init; }

    /// <summary>The chosen response's generated ids (ending EOS included), or null when unknown.</summary>
    [JsonPropertyName("chosen_input_ids")] public List<int>? ChosenInputIds { get; init; }

    /// <summary>The rejected response's generated ids (ending EOS included), or null when unknown.</summary>
    [JsonPropertyName("rejected_input_ids")] public List<int>? RejectedInputIds { get; init; }
}

/// <summary>Stored reference-model log-probs for a pair (the dpo stage reads these instead of running the reference).</summary>
public sealed record ReferenceLogProbRow
{
    /// <summary>Schema version.</summary>
    public const int SchemaVersion = 1;

    /// <summary>The pair's prompt id.</summary>
    [JsonPropertyName("prompt_id")] public string PromptId { get; init; } = "";

    /// <summary>S_ref(y_w): summed log-prob of the chosen completion.</summary>
    [JsonPropertyName("chosen_logps")] public double ChosenLogps { get; init; }

    /// <summary>S_ref(y_l).</summary>
    [JsonPropertyName("rejected_logps")] public double RejectedLogps { get; init; }

    /// <summary>|y_w| in tokens.</summary>
    [JsonPropertyName("chosen_tokens")] public int ChosenTokens { get; init; }

    /// <summary>|y_l| in tokens.</summary>
    [JsonPropertyName("rejected_tokens")] public int RejectedTokens { get; init; }

    /// <summary>H̄(x) = (H̄(y_w) + H̄(y_l)) / 2 with H̄(y) = Σ_t H_t / (|y|·log V): MallowsPO's dispersion.</summary>
    [JsonPropertyName("dispersion")] public double Dispersion { get; init; }
}

/// <summary>One metric value at a training step (TRL names).</summary>
public sealed record MetricRow
{
    /// <summary>Schema version.</summary>
    public const int SchemaVersion = 1;

    /// <summary>Stage, e.g. "dpo" or "ppo".</summary>
    [JsonPropertyName("stage")] public string Stage { get; init; } = "";

    /// <summary>Optimizer step.</summary>
    [JsonPropertyName("step")] public long Step { get; init; }

    /// <summary>Metric name, e.g. rewards/margins.</summary>
    [JsonPropertyName("name")] public string Name { get; init; } = "";

    /// <summary>Value.</summary>
    [JsonPropertyName("value")] public double Value { get; init; }
}

/// <summary>One evaluation sample: a policy's response to a held-out prompt and its reward.</summary>
public sealed record EvaluationRow
{
    /// <summary>Schema version.</summary>
    public const int SchemaVersion = 1;

    /// <summary>The prompt's id.</summary>
    [JsonPropertyName("prompt_id")] public string PromptId { get; init; } = "";

    /// <summary>start or final.</summary>
    [JsonPropertyName("policy")] public string Policy { get; init; } = "";

    /// <summary>Sample index.</summary>
    [JsonPropertyName("sample_index")] public int SampleIndex { get; init; }

    /// <summary>The response.</summary>
    [JsonPropertyName("response")] public string Response { get; init; } = "";

    /// <summary>Reward-model score.</summary>
    [JsonPropertyName("reward")] public double Reward { get; init; }

    /// <summary>Σ_t (log π_final − log π_start) over the sample's tokens (KL estimate; 0 for the start policy).</summary>
    [JsonPropertyName("kl")] public double Kl { get; init; }
}
