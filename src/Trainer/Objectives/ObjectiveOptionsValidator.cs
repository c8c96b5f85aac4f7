using Microsoft.Extensions.Options;

namespace PrefPipe.Trainer.Objectives;

/// <summary>Checks <see cref="ObjectiveOptions"/>: generated from its attributes, with the loss-type rules.</summary>
[OptionsValidator]
internal sealed partial class ObjectiveOptionsValidator : IValidateOptions<ObjectiveOptions>;
