namespace JobLog;

/// <summary>
/// The endpoint's requests are not recorded (<c>.JobLogExempt()</c> on minimal APIs). On controllers and actions too.
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Method | AttributeTargets.Delegate, Inherited = true)]
public sealed class JobLogExemptAttribute : Attribute
{
}

/// <summary>
/// The endpoint's request bodies are stored as the replacement text (<c>[Filtered]</c>) instead of their content
/// (<c>.HideJobLogRequestBody()</c> on minimal APIs). Use it for logins, payments, uploads of personal data.
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Method | AttributeTargets.Delegate, Inherited = true)]
public sealed class HideRequestBodyAttribute : Attribute
{
}

/// <summary>The slug stored with the endpoint's requests (<c>.WithJobLogSlug("login")</c>); default the endpoint name.</summary>
/// <param name="slug">The slug (at most 250 characters are stored).</param>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Method | AttributeTargets.Delegate, Inherited = true)]
public sealed class JobLogSlugAttribute(string slug) : Attribute
{
    /// <summary>The slug.</summary>
    public string Slug { get; } = slug;
}
