using Microsoft.Extensions.Options;

namespace PrefPipe.Models.Reward;

/// <summary>Checks <see cref="RewardModelOptions"/>: generated from its attributes, with its cross-field rules.</summary>
[OptionsValidator]
internal sealed partial class RewardModelOptionsValidator : IValidateOptions<RewardModelOptions>;
