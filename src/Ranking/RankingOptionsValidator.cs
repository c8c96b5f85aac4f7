using Microsoft.Extensions.Options;

namespace PrefPipe.Ranking;

/// <summary>Checks <see cref="RankingOptions"/> and the reward model and judge options inside: generated from their attributes, with their cross-field rules.</summary>
[OptionsValidator]
internal sealed partial class RankingOptionsValidator : IValidateOptions<RankingOptions>;
