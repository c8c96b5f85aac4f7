namespace PrefPipe.Ranking.Judges;

/// <summary>Which of two responses a judge prefers.</summary>
public enum Verdict
{
    /// <summary>The first response (A) is better.</summary>
    A,

    /// <summary>The second response (B) is better.</summary>
    B,

    /// <summary>Neither is clearly better.</summary>
    Tie,
}

/// <summary>One pairwise question: which of two candidate responses to the same prompt is better.</summary>
/// <param name="PromptId">Stable id of the prompt.</param>
/// <param name="Prompt">
/// The prompt as the user gave it: the plain text, or the conversation (a single user turn's text, else a "Role: content"
/// transcript); never the policy's chat-template rendering (BOS and turn markers), except when the candidates come
/// without their prompts artifact and that rendering is all there is.
/// </param>
/// <param name="IndexA">Candidate index shown first.</param>
/// <param name="ResponseA">Response shown first.</param>
/// <param name="IndexB">Candidate index shown second.</param>
/// <param name="ResponseB">Response shown second.</param>
public sealed record JudgeRequest(string PromptId, string Prompt, int IndexA, string ResponseA, int IndexB, string ResponseB);

/// <summary>A judge's answer.</summary>
/// <param name="Verdict">Which response won, or a tie.</param>
/// <param name="ProbabilityA">P(A ≻ B) when the judge has one (the reward judge does), else null.</param>
/// <param name="Raw">The judge's raw output (LLM text), for the comparisons artifact; null for numeric judges.</param>
public sealed record JudgeVerdict(Verdict Verdict, double? ProbabilityA = null, string? Raw = null);

/// <summary>A pairwise judge: reward-model scores, an LLM over a chat endpoint, or any pairwise model.</summary>
public interface IPairwiseJudge
{
    /// <summary>Name recorded with every comparison, e.g. "reward" or "llm:gpt-4o".</summary>
    string Name { get; }

    /// <summary>Whether the verdict can depend on which response is shown first (LLMs: yes; score differences: no).</summary>
    bool OrderSensitive { get; }

    /// <summary>Compares two responses.</summary>
    ValueTask<JudgeVerdict> CompareAsync(JudgeRequest request, CancellationToken cancellationToken = default);
}
