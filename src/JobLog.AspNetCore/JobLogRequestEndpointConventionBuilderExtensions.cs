using JobLog;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Endpoint metadata for inbound request logging.</summary>
public static class JobLogRequestEndpointConventionBuilderExtensions
{
    /// <summary>The endpoint's requests are not recorded.</summary>
    /// <typeparam name="TBuilder">The endpoint builder.</typeparam>
    /// <param name="builder">The endpoint (or group) builder.</param>
    /// <returns>The builder.</returns>
    public static TBuilder JobLogExempt<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder => Add(builder, new JobLogExemptAttribute());

    /// <summary>The endpoint's request bodies are stored as <c>[Filtered]</c>.</summary>
    /// <typeparam name="TBuilder">The endpoint builder.</typeparam>
    /// <param name="builder">The endpoint (or group) builder.</param>
    /// <returns>The builder.</returns>
    public static TBuilder HideJobLogRequestBody<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder => Add(builder, new HideRequestBodyAttribute());

    /// <summary>The slug stored with the endpoint's requests (default: the endpoint name).</summary>
    /// <typeparam name="TBuilder">The endpoint builder.</typeparam>
    /// <param name="builder">The endpoint (or group) builder.</param>
    /// <param name="slug">The slug.</param>
    /// <returns>The builder.</returns>
    public static TBuilder WithJobLogSlug<TBuilder>(this TBuilder builder, string slug)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(slug);
        return Add(builder, new JobLogSlugAttribute(slug));
    }

    private static TBuilder Add<TBuilder>(TBuilder builder, object metadata)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Add(b => b.Metadata.Add(metadata));
        return builder;
    }
}
