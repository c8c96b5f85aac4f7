using Microsoft.Extensions.Options;

namespace PrefPipe.Trainer.Ppo;

/// <summary>Checks <see cref="PpoOptions"/>: generated from its attributes.</summary>
[OptionsValidator]
internal sealed partial class PpoOptionsValidator : IValidateOptions<PpoOptions>;
