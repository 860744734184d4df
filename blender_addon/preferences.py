"""The add-on's preferences: which farm, as whom, paid from which wallet."""

from __future__ import annotations

import bpy

from .vendor.protocol import DEFAULT_BACKEND_URL

OUTPUT_FORMAT_ITEMS = [
    ("PNG", "PNG", "8-bit PNG frames"),
    ("OPEN_EXR", "OpenEXR", "Float OpenEXR frames (layers kept)"),
]


def _backend_changed(_prefs: bpy.types.AddonPreferences, _context: bpy.types.Context) -> None:
    """Another farm: its jobs, not the old farm's, fill the job list."""
    from . import runtime

    runtime.load_jobs_from_book(replace=True)


class RONRENDER_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    backend_url: bpy.props.StringProperty(
        name="Backend URL",
        description="Address of the RonRender farm's backend",
        default=DEFAULT_BACKEND_URL,
        update=_backend_changed,
    )
    api_token: bpy.props.StringProperty(
        name="API Token",
        description="Your RonRender API token, sent as 'Authorization: Bearer'",
        subtype="PASSWORD",
    )
    wallet_keystore: bpy.props.StringProperty(
        name="Wallet Keystore",
        description="Your encrypted wallet keystore (as `ronrender wallet new` writes it); it signs the "
        "acceptance of each estimate. Empty: $RONRENDER_KEYSTORE",
        subtype="FILE_PATH",
    )
    wallet_address: bpy.props.StringProperty(
        name="Wallet Address",
        description="The Ronin wallet (0x…) whose escrow pays for your jobs, when no keystore is set",
        maxlen=42,
    )
    default_output_format: bpy.props.EnumProperty(
        name="Default Output Format",
        description="Output format of a job when the scene's RonRender settings say 'Default'",
        items=OUTPUT_FORMAT_ITEMS,
        default="PNG",
    )

    def draw(self, context: bpy.types.Context) -> None:
        from . import runtime
        from .online import online_allowed

        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "backend_url")
        layout.prop(self, "api_token")
        col = layout.column(heading="Wallet")
        col.prop(self, "wallet_keystore", text="Keystore")
        address = runtime.wallet_address(context)
        if self.wallet_keystore.strip() and address:
            col.label(text=f"Address {address}", icon="LOCKED")
        else:
            col.prop(self, "wallet_address", text="Address")
        row = col.row()
        row.label(text=context.window_manager.ronrender.wallet_text or "Escrow balance not checked yet")
        row.operator("ronrender.check_balance", text="", icon="FILE_REFRESH")
        layout.prop(self, "default_output_format")
        app = bpy.app
        if not online_allowed(app.online_access, app.background, app.online_access_override):
            layout.label(text="Allow Online Access is off (Preferences › System › Network)", icon="ERROR")


def get_preferences(context: bpy.types.Context | None = None) -> RONRENDER_AddonPreferences:
    context = context or bpy.context
    return context.preferences.addons[__package__].preferences
