using Microsoft.Extensions.Options;

namespace PrefPipe.Host.Pipelines;

/// <summary>Checks a pipeline file's own sections (name, storage, inputs, models, training plan, evaluation, triggers):
/// generated from their attributes. The stages' options have their own validators.</summary>
[OptionsValidator]
internal sealed partial class PipelineDefinitionValidator : IValidateOptions<PipelineDefinition>;
