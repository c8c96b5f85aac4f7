using Microsoft.Extensions.Options;

namespace PrefPipe.Ranking.Judges;

/// <summary>Checks <see cref="LlmJudgeOptions"/>: generated from its attributes, with its template and marker rules.</summary>
[OptionsValidator]
internal sealed partial class LlmJudgeOptionsValidator : IValidateOptions<LlmJudgeOptions>;
